import { newRow, orderPaid, type Message } from './workload.ts'

export interface HotWorkload {
  messages: Message[]
  /** Indexes (into `messages`) of the changes on hot rows. */
  hot: Set<number>
}

/**
 * `count` changes in commit order, a `share` of them on `rowShare` of the rows (a fifth of the
 * changes on 1 % of the rows, by default), spread through the stream; the rest on rows of their own.
 */
export function hotRows (table: string, count: number, random: () => number, share = 0.2, rowShare = 0.01): HotWorkload {
  const hotCount = Math.round(count * share)
  const rows = Math.max(1, Math.round((count - hotCount + Math.min(hotCount, 1)) * rowShare))
  const hotRowIds = Array.from({ length: rows }, () => newRow())
  const messages: Message[] = []
  const hot = new Set<number>()
  let hotLeft = hotCount
  for (let i = 0; i < count; i++) {
    // Each remaining slot takes a hot change with the odds that leave the right number for the end.
    if (hotLeft > 0 && random() < hotLeft / (count - i)) {
      hot.add(i)
      hotLeft--
      messages.push(orderPaid(table, hotRowIds[Math.floor(random() * rows)]!))
    } else {
      messages.push(orderPaid(table, newRow()))
    }
  }
  return { messages, hot }
}
