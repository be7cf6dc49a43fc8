import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'

/** A lock older than this was left by a process that died holding it. */
const STALE_LOCK_MS = 10_000
const ATTEMPTS = 100

/**
 * The secret kept in `file` (trimmed), created with `generate` when the file is missing or empty.
 * The file is only ever replaced whole, mode 0600: of processes starting at once, every one ends
 * with the same secret, and none reads a half-written file. Used for the generated development
 * webhook token and dashboard password.
 */
export async function readOrCreateSecret (file: string, generate: () => string): Promise<string> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const existing = await readTrimmed(file)
    if (existing) return existing
    const created = existing === null ? await createMissing(file, generate) : await replaceEmpty(file, generate)
    if (created) return created
  }
  throw new Error(`could not read or create ${file}: other processes kept changing it`)
}

/** The file's content, trimmed; null when it does not exist. Any other failure is the operator's to see. */
async function readTrimmed (file: string): Promise<string | null> {
  try {
    return (await readFile(file, 'utf8')).trim()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

/** A complete private file next to `file`, ready to be linked or renamed into place. */
async function writeTemp (file: string, secret: string): Promise<string> {
  await mkdir(dirname(file), { recursive: true })
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`
  await writeFile(temp, `${secret}\n`, { mode: 0o600, flag: 'wx' })
  return temp
}

/** `link` refuses to replace: of processes creating the file at once exactly one wins. Null if it lost. */
async function createMissing (file: string, generate: () => string): Promise<string | null> {
  const secret = generate()
  const temp = await writeTemp(file, secret)
  try {
    await link(temp, file)
    return secret
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return null
    throw error
  } finally {
    await unlink(temp).catch(() => {})
  }
}

/**
 * An empty file (a `touch`, a full disk) is replaced, never used as an empty secret. Replacing is
 * not atomic against another replacer, so one process does it under an exclusive lock file while
 * the others wait for the lock to go, then read what it wrote. Null when the caller should read again.
 */
async function replaceEmpty (file: string, generate: () => string): Promise<string | null> {
  const lock = `${file}.lock`
  let handle
  try {
    handle = await open(lock, 'wx', 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    await waitForRelease(lock)
    return null
  }
  try {
    const existing = await readTrimmed(file)
    if (existing) return existing // filled by the previous holder of the lock
    const secret = generate()
    const temp = await writeTemp(file, secret)
    await rename(temp, file).catch(async (error: unknown) => {
      await unlink(temp).catch(() => {})
      throw error
    })
    return secret
  } finally {
    await handle.close()
    await unlink(lock).catch(() => {})
  }
}

async function waitForRelease (lock: string): Promise<void> {
  for (;;) {
    let modified: number
    try {
      modified = (await stat(lock)).mtimeMs
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
      throw error
    }
    if (Date.now() - modified > STALE_LOCK_MS) {
      await unlink(lock).catch(() => {})
      return
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
