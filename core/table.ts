/** Plain-text tables for every command's output: columns padded to the widest cell, numbers right-aligned. */

export function renderTable(
  header: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const cells = [header, ...rows].map((row) => row.map((c) => String(c)));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  // A column is right-aligned when every cell is a number or reads as one ("12.5%", "3.2s", "$4.00", "—").
  const numeric = header.map(
    (_, i) =>
      rows.length > 0 &&
      rows.every((r) => typeof r[i] === "number" || /^-?\$?[\d.,]+[%×smhd]?$|^[—∞]$/.test(String(r[i]))),
  );
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(cells[0]!), line(widths.map((w) => "─".repeat(w))), ...cells.slice(1).map(line)].join("\n");
}
