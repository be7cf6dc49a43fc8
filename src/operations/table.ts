/** Text for one table cell: errors can span lines, which would break the columns. */
export function oneLine (text: string | null | undefined): string {
  return (text ?? '').replace(/\s+/g, ' ').trim()
}

/**
 * Left-aligned columns for a terminal. The last column is not padded, so a long value there
 * (an error message) does not widen the others.
 */
export function formatTable (headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string[] {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: readonly string[]) => cells
    .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
    .join('  ')
    .trimEnd()
  return [line(headers), ...rows.map(line)]
}
