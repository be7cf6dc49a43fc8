import type { ChangeSource, SimulatedMessage } from './sequin.ts'

/**
 * A shop's change stream for the example workflows (jobs/): users sign up and change their email,
 * orders are placed (pending), paid and shipped. Each change is a Sequin message as the HTTP sink
 * sends it, with REPLICA IDENTITY FULL (`changes` holds the old values).
 */
export interface ShopOptions {
  random: () => number
  /** Stop after this many changes (default: never; the simulation's duration ends it). */
  limit?: number
  /** First id of the users and orders rows (default 1). */
  firstId?: number
  /** First commit LSN (default: from the clock, so that a second run's changes are new changes). */
  firstLsn?: number
}

/** What the stream committed so far: the runs the example workflows start for it. */
export interface ShopTally {
  signups: number
  emailChanges: number
  ordersPlaced: number
  ordersPaid: number
  ordersShipped: number
}

interface User { id: number, email: string, name: string, createdAt: string, updatedAt: string, seq: number }
interface Order { id: number, userId: number, status: 'pending' | 'paid' | 'shipped', total: string, createdAt: string, updatedAt: string, paidAt: string | null, seq: number }

const NAMES = ['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken', 'Radia', 'Niklaus']
const database = { annotations: {}, database: 'shop', hostname: 'localhost', id: 'changeflow-simulate', name: 'simulated-shop' }
const consumer = { annotations: {}, id: 'changeflow-simulate', name: 'simulated-shop' }

export function shopStream (options: ShopOptions): { changes: ChangeSource, tally: ShopTally } {
  const { random } = options
  const tally: ShopTally = { signups: 0, emailChanges: 0, ordersPlaced: 0, ordersPaid: 0, ordersShipped: 0 }
  const users: User[] = []
  const pending: Order[] = []
  const paid: Order[] = []
  let nextUser = options.firstId ?? 1
  let nextOrder = options.firstId ?? 1
  let lsn = options.firstLsn ?? Date.now() * 1000
  let committed = 0
  const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)]!
  const take = <T>(list: T[]): T => list.splice(Math.floor(random() * list.length), 1)[0]!

  const message = (table: 'users' | 'orders', id: number, seq: number, action: string, record: object, changes: object | null): SimulatedMessage => {
    lsn++
    const body = {
      action,
      record,
      changes,
      metadata: {
        table_schema: 'public',
        table_name: table,
        commit_timestamp: new Date().toISOString(),
        commit_lsn: lsn,
        commit_idx: 0,
        idempotency_key: Buffer.from(`${lsn}:0`).toString('base64'),
        record_pks: [String(id)],
        database,
        database_name: database.name,
        consumer,
        transaction_annotations: null,
        enrichment: null,
      },
    }
    return { row: id, group: `${table}:${id}`, seq, lsn, body, deliveries: 0, visibleAt: 0, acked: false }
  }

  const userRecord = (user: User) => ({ id: user.id, email: user.email, full_name: user.name, created_at: user.createdAt, updated_at: user.updatedAt })
  const orderRecord = (order: Order) => ({
    id: order.id,
    user_id: order.userId,
    status: order.status,
    total_amount: order.total,
    currency: 'EUR',
    created_at: order.createdAt,
    updated_at: order.updatedAt,
    paid_at: order.paidAt,
    shipped_at: order.status === 'shipped' ? order.updatedAt : null,
    tracking_number: order.status === 'shipped' ? `TRK${order.id}` : null,
  })

  const signUp = (now: string) => {
    const id = nextUser++
    const name = pick(NAMES)
    const user: User = { id, email: `${name.toLowerCase()}.${id}@example.com`, name, createdAt: now, updatedAt: now, seq: 0 }
    users.push(user)
    tally.signups++
    return message('users', id, user.seq, 'insert', userRecord(user), null)
  }
  const changeEmail = (now: string) => {
    const user = pick(users)
    const old = { email: user.email, updated_at: user.updatedAt }
    user.email = `${user.name.toLowerCase()}.${user.id}.${++user.seq}@example.org`
    user.updatedAt = now
    tally.emailChanges++
    return message('users', user.id, user.seq, 'update', userRecord(user), old)
  }
  const placeOrder = (now: string) => {
    const order: Order = { id: nextOrder++, userId: pick(users).id, status: 'pending', total: (10 + random() * 190).toFixed(2), createdAt: now, updatedAt: now, paidAt: null, seq: 0 }
    pending.push(order)
    tally.ordersPlaced++
    return message('orders', order.id, order.seq, 'insert', orderRecord(order), null)
  }
  const pay = (now: string) => {
    const order = take(pending)
    const old = { status: 'pending', paid_at: null, updated_at: order.updatedAt }
    Object.assign(order, { status: 'paid', paidAt: now, updatedAt: now, seq: order.seq + 1 })
    paid.push(order)
    tally.ordersPaid++
    return message('orders', order.id, order.seq, 'update', orderRecord(order), old)
  }
  const ship = (now: string) => {
    const order = take(paid)
    const old = { status: 'paid', shipped_at: null, tracking_number: null, updated_at: order.updatedAt }
    Object.assign(order, { status: 'shipped', updatedAt: now, seq: order.seq + 1 })
    tally.ordersShipped++
    return message('orders', order.id, order.seq, 'update', orderRecord(order), old)
  }

  const changes: ChangeSource = () => {
    if (options.limit !== undefined && committed >= options.limit) return undefined
    committed++
    const now = new Date().toISOString()
    const dice = random()
    if (users.length === 0 || dice < 0.15) return signUp(now)
    if (dice < 0.25) return changeEmail(now)
    if (dice < 0.5 && paid.length > 0) return ship(now)
    if (dice < 0.75 && pending.length > 0) return pay(now)
    return placeOrder(now)
  }
  return { changes, tally }
}
