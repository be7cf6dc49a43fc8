// ioredis's own slot calculation (CRC16 of the hash tag, modulo 16384); the package ships no types.
declare module 'cluster-key-slot' {
  export default function calculateSlot (key: string): number
}
