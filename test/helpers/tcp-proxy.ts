import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

/** `up`: from the client to the target (requests); `down`: from the target back (replies). */
export type Direction = 'up' | 'down'

/**
 * What happens to a chunk: passed on; the connection cut before it (it never arrives);
 * passed on, then the connection cut (it arrives, the answer to it never comes back); or only
 * its first half passed on, then the cut (the target sees a truncated message).
 */
export type Verdict = 'pass' | 'cut' | 'pass-then-cut' | 'half-then-cut'

export interface TcpProxy {
  port: number
  /** Decides each chunk's fate; the default passes everything. Replace it at any time. */
  inspect: (chunk: Buffer, direction: Direction) => Verdict
  /** Connections open now (client side). */
  open (): number
  /** Connections cut so far: by inspect(), cutAll() or refused. */
  cuts (): number
  /** Resets every open connection at once, as a network failure would. Returns how many. */
  cutAll (): number
  /** While true, every new connection is reset at once: the target is unreachable (a partition). */
  refusing: boolean
  close (): Promise<void>
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1'])

interface Pair { client: Socket, target: Socket, cut: boolean }

function reset (socket: Socket): void {
  // RST rather than FIN: the peer sees ECONNRESET, as when a network path or a host goes away.
  if (!socket.destroyed) socket.resetAndDestroy()
}

/**
 * A TCP proxy on a free loopback port in front of `targetPort`, under the test's control: it can
 * cut one connection at an exact chunk (a command sent, its reply lost) or all of them at once.
 * Loopback only: a fault test never sends traffic anywhere else.
 */
export async function startTcpProxy (targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  if (!LOOPBACK.has(targetHost)) throw new Error(`tcp proxy: ${targetHost} is not loopback`)
  const pairs = new Set<Pair>()
  let cuts = 0

  const cut = (pair: Pair) => {
    if (pair.cut) return
    pair.cut = true
    cuts++
    reset(pair.client)
    reset(pair.target)
    pairs.delete(pair)
  }

  // Copies chunks from one side to the other, asking inspect() first; honours back-pressure.
  const forward = (pair: Pair, from: Socket, to: Socket, direction: Direction) => {
    from.on('data', (chunk: Buffer) => {
      if (pair.cut) return
      const verdict = proxy.inspect(chunk, direction)
      if (verdict === 'cut') return cut(pair)
      if (verdict === 'half-then-cut') {
        to.write(chunk.subarray(0, Math.max(1, chunk.length >> 1)), () => cut(pair))
        return
      }
      const flushed = to.write(chunk, verdict === 'pass-then-cut' ? () => cut(pair) : undefined)
      if (!flushed) {
        from.pause()
        to.once('drain', () => from.resume())
      }
    })
    from.on('end', () => { if (!pair.cut) to.end() })
    from.on('error', () => cut(pair))
    from.on('close', () => {
      if (!pair.cut) {
        pairs.delete(pair)
        to.destroy()
      }
    })
  }

  const server = createServer((client) => {
    if (proxy.refusing) {
      cuts++
      return reset(client)
    }
    client.pause()
    const target = connect(targetPort, targetHost)
    const pair: Pair = { client, target, cut: false }
    pairs.add(pair)
    forward(pair, client, target, 'up')
    forward(pair, target, client, 'down')
    target.once('connect', () => client.resume())
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })

  const proxy: TcpProxy = {
    port: (server.address() as AddressInfo).port,
    inspect: () => 'pass',
    refusing: false,
    open: () => pairs.size,
    cuts: () => cuts,
    cutAll () {
      const open = [...pairs]
      for (const pair of open) cut(pair)
      return open.length
    },
    close () {
      proxy.cutAll()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
  return proxy
}
