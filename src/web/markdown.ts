// Just enough Markdown for report.md's own output (src/report/markdown.ts): headings, tables,
// list items and paragraphs, built as DOM nodes with textContent (a results.json cannot inject
// markup). Images are left out: the viewer draws the plots from their vega-lite specs instead.
import { el } from './ui.js';

/** `**bold**` and `code` marks dropped; the text stays. */
function plain(text: string): string {
  return text.replace(/\*\*(.*?)\*\*/g, '$1').replace(/`([^`]*)`/g, '$1');
}

function cells(line: string): string[] {
  return line.trim().replace(/^\||\|$/g, '').split('|').map((c) => plain(c.trim()));
}

export function markdownToNodes(md: string): HTMLElement[] {
  const out: HTMLElement[] = [];
  const lines = md.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heading = /^(#{1,4}) (.*)$/.exec(line);
    if (heading) out.push(el(`h${Math.min(4, heading[1]!.length + 1)}` as 'h2', plain(heading[2]!)));
    else if (line.startsWith('|')) {
      const table = el('table');
      const head = el('tr');
      head.append(...cells(line).map((c) => el('th', c)));
      table.append(head);
      while (lines[i + 1]?.startsWith('|')) {
        const next = lines[++i]!;
        if (/^\|[-| :]+\|$/.test(next.trim())) continue; // the separator row
        const tr = el('tr');
        tr.append(...cells(next).map((c) => el('td', c)));
        table.append(tr);
      }
      out.push(table);
    } else if (line.startsWith('- ')) {
      const list = out[out.length - 1]?.tagName === 'UL' ? out[out.length - 1]! : out[out.push(el('ul')) - 1]!;
      list.append(el('li', plain(line.slice(2))));
    } else if (line.trim() && !line.startsWith('![')) out.push(el('p', plain(line)));
  }
  return out;
}
