'use strict';
// The shell commands of the documentation: every fenced ```sh block of README.md and
// docs/*.md, with the marker written on the line before it (blank lines between allowed):
//   <!-- not-run: why -->            a block no test runs, and why (counted and printed)
//   <!-- run-by: <ctest name> <id> -->  a block another test runs, by id (e.g. the package test)
//   (none)                           a block tests/integration/docs.test.js runs
const fs = require('fs');
const path = require('path');

const ROOT = path.join(__dirname, '../../..');

function pages() {
  const docs = fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).sort();
  return ['README.md', ...docs.map((f) => path.join('docs', f))];
}

// [{ page, line (1-based, of the opening fence), lang, marker: null | { kind, reason | test, id }, text }]
function blocks(page) {
  const lines = fs.readFileSync(path.join(ROOT, page), 'utf8').split('\n');
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const body = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) body.push(lines[j].slice(Math.min(indent, lines[j].search(/\S|$/))));
    if (j === lines.length) throw new Error(`${page}:${i + 1}: a fence that is never closed`);
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === '') k--;
    let marker = null;
    const m = k >= 0 ? /^\s*<!--\s*(not-run|run-by):\s*(.*?)\s*-->\s*$/.exec(lines[k]) : null;
    if (m && m[1] === 'not-run') marker = { kind: 'not-run', reason: m[2] };
    if (m && m[1] === 'run-by') {
      const [test, id] = m[2].split(/\s+/);
      marker = { kind: 'run-by', test, id };
    }
    found.push({ page, line: i + 1, lang: open[2], marker, text: body.join('\n') + '\n' });
    i = j;
  }
  return found;
}

function allBlocks() {
  return pages().flatMap(blocks);
}

// The block a test runs by its id, exactly one.
function runBy(test, id) {
  const mine = allBlocks().filter((b) => b.marker && b.marker.kind === 'run-by' && b.marker.test === test && b.marker.id === id);
  if (mine.length !== 1) throw new Error(`${mine.length} blocks marked run-by: ${test} ${id}`);
  return mine[0];
}

module.exports = { ROOT, pages, blocks, allBlocks, runBy };
