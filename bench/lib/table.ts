/** A Markdown table, columns padded so that it also reads well in a terminal. */
export function table (header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)))
  const numeric = header.map((_title, i) => rows.length > 0 && rows.every((row) => /^[\d.,×%+−-]*$/.test(row[i] ?? '')))
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => numeric[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)).join(' | ')} |`
  const rule = `|${widths.map((width, i) => numeric[i] ? `${'-'.repeat(width + 1)}:` : '-'.repeat(width + 2)).join('|')}|`
  return [line(header), rule, ...rows.map(line)].join('\n')
}

export const fixed = (value: number, digits: number) => value.toFixed(digits)
export const rate = (value: number) => Math.round(value).toLocaleString('en-US')
export const ratio = (value: number) => `${value.toFixed(2)}×`
