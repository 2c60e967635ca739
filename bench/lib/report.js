'use strict';
// Turning runs into medians (min–max) and the Markdown report.

const { summarize, fmtRange, fmtAuto } = require('./util');

/** { [column.key]: { median, min, max, n } } over the runs that have a value. */
function summarizeRuns(runs, columns) {
  const out = {};
  for (const c of columns) out[c.key] = summarize(runs.map((r) => r[c.key]));
  return out;
}

/** Peers legato is compared with in the ratio table, in column order. */
const RATIO_PEERS = ['haproxy', 'nginx', 'node', 'tinyproxy', 'squid'];
const PEER_TITLES = { haproxy: 'HAProxy', nginx: 'nginx', node: 'Node', tinyproxy: 'tinyproxy', squid: 'squid' };

function table(rows, columns) {
  const head = ['peer', 'thr', ...columns.map((c) => c.title)];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) {
    const cells = [r.label, r.threads === null ? '–' : String(r.threads)];
    for (const c of columns) {
      const s = r.summary && r.summary[c.key];
      cells.push(s ? fmtRange(s, c.fmt || fmtAuto) : (r.runs.length ? '–' : 'failed'));
    }
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

/**
 * legato ÷ peer per thread count, on the case's ratioKeys (its meaningful cost figure, e.g.
 * CPU per request for 1 KiB responses, CPU per GiB for 1 MiB) or else every `ratio` column.
 */
function ratios(kase, columns) {
  const out = [];
  const keys = kase.ratioKeys || columns.filter((x) => x.ratio).map((x) => x.key);
  if (!keys.length) return out;
  for (const lg of kase.rows.filter((r) => r.peer === 'legato' && r.summary)) {
    for (const c of columns.filter((x) => keys.includes(x.key))) {
      const mine = lg.summary[c.key];
      if (!mine || !mine.median) continue;
      const cells = {};
      for (const p of RATIO_PEERS) {
        const other = kase.rows.find((r) => r.peer === p && r.threads === lg.threads && r.summary);
        const o = other && other.summary[c.key];
        if (o && o.median) cells[p] = mine.median / o.median;
      }
      if (Object.keys(cells).length) out.push({ case: kase.label, threads: lg.threads, metric: c.title, ratios: cells });
    }
  }
  return out;
}

function markdown(doc) {
  const m = doc.machine;
  const L = [];
  L.push(`# legato benchmarks — ${doc.date.replace('T', ' ').replace(/\..*$/, ' UTC')}`);
  L.push('');
  L.push(`Machine: ${m.nproc} CPUs (\`nproc\`), ${m.cpuModel}, ${m.memTotalGiB} GiB, Linux ${m.kernel}; Node ${m.node}, HAProxy ${m.haproxy || 'absent'}, nginx ${m.nginx || 'absent'}, wrk ${m.wrk || 'absent'}${['tinyproxy', 'squid'].filter((k) => k in m).map((k) => `, ${k} ${m[k] || 'absent'}`).join('')}.`);
  const a = m.legato.addon;
  L.push(`legato: commit ${m.legato.commit || '?'}${m.legato.dirtyFiles ? ` + ${m.legato.dirtyFiles} uncommitted file(s) in src/ lib/` : ''}, addon ${a ? `${a.file} built ${a.mtime}` : 'missing'}.`);
  const s = doc.settings;
  L.push(`Settings: ${s.runs} runs × ${s.seconds} s (after ${s.warmup} s warm-up) per peer and case, peers interleaved within each run; cells are **median (min–max)**. Proxy pinned to CPU ${s.cpuPlan.proxy}, load generator and origin to CPU ${s.cpuPlan.load} (\`taskset\`).`);
  for (const [p, why] of Object.entries(doc.skippedPeers || {})) L.push(`Skipped ${p}: ${why}.`);
  L.push('');
  const allRatios = [];
  for (const sc of doc.scenarios) {
    const scenario = require(`../scenarios/${sc.id.toLowerCase()}`);
    L.push(`## ${sc.id} — ${sc.title}`);
    L.push('');
    if (sc.pending) {
      L.push(`*pending: ${sc.pending}*`);
      L.push('');
      if (!sc.cases.length) continue;
      L.push('The other peers, measured with `--include-pending`:');
      L.push('');
    }
    if (sc.failed) { L.push(`*failed: ${sc.failed}*`); L.push(''); continue; }
    for (const n of sc.notes || []) L.push(`${n}`);
    if ((sc.notes || []).length) L.push('');
    for (const kase of sc.cases) {
      L.push(`### ${sc.id} ${kase.label}`);
      L.push('');
      if (kase.pending) {
        L.push(`*pending: ${kase.pending}*`);
        L.push('');
        if (!kase.rows.length) continue;
      }
      L.push(table(kase.rows, scenario.columns));
      L.push('');
      const notes = [];
      for (const r of kase.rows) {
        const who = `${r.label}${r.threads ? ` ×${r.threads}` : ''}`;
        for (const e of r.errors) notes.push(`- ${who}: error ${e}`);
        for (const w of r.warnings) {
          // Older result files kept the background-load note among the checks.
          if (/other processes used/.test(w)) notes.push(`- ${who}: noisy ${w}`);
          else notes.push(`- ${who}: check failed ${w}`);
        }
        for (const n of r.noisy || []) notes.push(`- ${who}: noisy: ${n}`);
      }
      if (notes.length) { L.push(...notes); L.push(''); }
      if (kase.ratioKeys === undefined) {
        // Result files from before ratioKeys were recorded: take them from the scenario's cases.
        try {
          const def = scenario.cases({ opt: doc.settings }, {}).find((k) => k.id === kase.id);
          kase.ratioKeys = (def && def.ratioKeys) || null;
        } catch (_) { kase.ratioKeys = null; }
      }
      for (const r of ratios(kase, scenario.columns)) allRatios.push({ scenario: sc.id, ...r });
    }
    if (scenario.goals && sc.cases.length) L.push(...scenario.goals(sc));
  }
  if (allRatios.length) {
    const peers = RATIO_PEERS.filter((p) => allRatios.some((r) => r.ratios[p] !== undefined));
    L.push('## Ratios: legato ÷ peer (medians; below 1 means legato needs less)');
    L.push('');
    L.push(`| scenario | case | thr | metric | ${peers.map((p) => `÷ ${PEER_TITLES[p]}`).join(' | ')} |`);
    L.push(`|---|---|---|---|${peers.map(() => '---:').join('|')}|`);
    for (const r of allRatios) {
      const f = (p) => (r.ratios[p] === undefined ? '–' : `${fmtAuto(r.ratios[p])}×`);
      L.push(`| ${r.scenario} | ${r.case} | ${r.threads} | ${r.metric} | ${peers.map(f).join(' | ')} |`);
    }
    L.push('');
  }
  return `${L.join('\n')}\n`;
}

module.exports = { summarizeRuns, markdown, ratios, PEER_TITLES };
