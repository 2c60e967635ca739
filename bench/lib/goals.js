'use strict';
// Issue 16's goals beside a run's medians: each scenario that carries some of them (S1–S4) lists
// its rows here, and bench/lib/report.js prints them under the scenario's tables with legato's
// median, the other peers' medians from the same run, and whether the goal is met.

/** The median of `key` for `peer` in case `caseId` of a scenario result, or null. */
function caseMedian(sc, caseId, peer, key) {
  const k = sc.cases.find((c) => c.id === caseId);
  const r = k && k.rows.find((x) => x.peer === peer);
  return r && r.summary && r.summary[key] && r.summary[key].median !== undefined ? r.summary[key].median : null;
}

/**
 * Markdown lines: a table of goals. Each def: { what, caseId, key, scale (multiplies the median
 * into the unit shown; default 1), digits, goal (number), atMost (true: lower is better) }.
 */
function goalLines(sc, title, defs) {
  const { PEER_TITLES } = require('./report'); // here: report.js loads the scenarios, which load this
  const fmt = (x, d) => (x === null ? '–' : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }));
  const rows = defs.map((d) => {
    const scale = d.scale || 1;
    const val = (peer) => { const m = caseMedian(sc, d.caseId, peer, d.key); return m === null ? null : m * scale; };
    const mine = val('legato');
    const peers = [];
    const k = sc.cases.find((c) => c.id === d.caseId);
    for (const r of (k ? k.rows : [])) {
      if (r.peer === 'legato' || r.peer === 'direct' || r.peer.startsWith('legato-')) continue;
      const v = val(r.peer);
      if (v !== null) peers.push(`${PEER_TITLES[r.peer] || r.peer} ${fmt(v, d.digits)}`);
    }
    const met = mine === null ? '–' : (d.atMost ? mine <= d.goal : mine >= d.goal) ? 'yes' : '**no**';
    return `| ${d.what} | ${fmt(mine, d.digits)} | ${peers.join(', ') || '–'} | ${d.atMost ? '≤' : '≥'} ${fmt(d.goal, d.digits)} | ${met} |`;
  });
  return [`### ${title}`, '', '| measurement | legato | peers, same run | goal | met |', '|---|---:|---|---:|---|', ...rows, ''];
}

module.exports = { caseMedian, goalLines };
