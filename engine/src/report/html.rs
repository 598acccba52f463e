//! The report as one self-contained HTML page: inline CSS, a few lines of inline script,
//! inline SVG. Nothing is loaded from anywhere, so it opens on an air-gapped cluster and
//! can be mailed.

use super::data::{ReportData, StepReport};
use super::svg::{self, human_duration, state_colour, STATE_ORDER};
use crate::trace::iso_utc;
use std::fmt::Write;

/// Escape text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --fg:#1d232b; --muted:#5d6570; --line:#e3e6ea; --bg:#f7f8fa; }
* { box-sizing: border-box; }
body { margin:0; font: 14px/1.45 "DejaVu Sans", system-ui, sans-serif; color:var(--fg); background:var(--bg); }
header { padding:18px 28px 12px; background:#fff; border-bottom:1px solid var(--line); }
h1 { font-size:22px; margin:0 0 4px; }
h2 { font-size:17px; margin:0 0 10px; }
h3 { font-size:15px; margin:0 0 8px; }
main { padding:16px 28px 40px; }
section.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:14px 18px; margin:0 0 16px; overflow-x:auto; }
.muted, .node-kind, .tick { color:var(--muted); fill:var(--muted); }
.node-name { font-weight:bold; font-size:13px; }
.node-kind, .tick { font-size:11px; }
.lane-label { font-size:12px; font-weight:bold; }
.dag-node { cursor:pointer; }
table { border-collapse:collapse; margin:6px 0 10px; }
th, td { text-align:left; padding:3px 10px 3px 0; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-weight:600; color:var(--muted); }
td.num, th.num { text-align:right; }
.chip { display:inline-block; padding:1px 8px; border-radius:10px; color:#fff; font-size:12px; margin-right:4px; }
.verdict { font-weight:bold; padding:2px 10px; border-radius:4px; color:#fff; }
.PASS { background:#2e9e5b; } .MARGINAL { background:#e7a33e; } .FAIL { background:#d64541; }
pre { background:#f3f4f6; padding:6px 8px; margin:4px 0 8px; white-space:pre-wrap; word-break:break-all; font-size:12px; }
.note { border-left:4px solid #e7a33e; padding:6px 10px; background:#fff8ec; margin:0 0 8px; }
.advice { border-left:4px solid #3b7dd8; padding:4px 10px; background:#eef4fd; margin:4px 0; }
.grid { display:flex; flex-wrap:wrap; gap:24px; }
.legend span { margin-right:12px; font-size:12px; }
.legend i { display:inline-block; width:10px; height:10px; margin-right:4px; vertical-align:-1px; }
"#;

const SCRIPT: &str = r#"
(function () {
  window.addEventListener('error', function (e) {
    var b = document.body;
    b.setAttribute('data-js-errors', (b.getAttribute('data-js-errors') || '') + e.message + ';');
  });
  var nodes = document.querySelectorAll('.dag-node');
  for (var i = 0; i < nodes.length; i++) {
    nodes[i].addEventListener('click', function () {
      var t = document.getElementById('step-' + this.getAttribute('data-step'));
      if (t) { t.scrollIntoView({ behavior: 'smooth' }); }
    });
  }
  document.body.setAttribute('data-report-ready', String(nodes.length));
})();
"#;

fn legend() -> String {
    let mut out = String::from(r#"<div class="legend">"#);
    for st in STATE_ORDER.iter().chain(["lost"].iter()) {
        let _ = write!(
            out,
            r#"<span><i style="background:{}"></i>{st}</span>"#,
            state_colour(st)
        );
    }
    out.push_str(r#"<span><i style="background:#dfe3e8"></i>queued</span></div>"#);
    out
}

fn opt(v: Option<f64>, unit: &str, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}{unit}"))
}

fn step_section(out: &mut String, s: &StepReport) {
    let _ = write!(
        out,
        r#"<section class="card step" id="step-{n}" data-step="{n}"><h3>{n} <span class="muted">[{k}]</span></h3>"#,
        n = esc(&s.name),
        k = esc(&s.kind)
    );
    if !s.needs.is_empty() {
        let _ = write!(
            out,
            r#"<p class="muted">needs {}</p>"#,
            esc(&s.needs.join(", "))
        );
    }
    out.push_str("<p>");
    for st in STATE_ORDER {
        let n = s.counts.get(*st).copied().unwrap_or(0);
        if n > 0 {
            let _ = write!(
                out,
                r#"<span class="chip" style="background:{}">{n} {st}</span>"#,
                state_colour(st)
            );
        }
    }
    let _ = write!(
        out,
        r#" <span class="muted">of {} task(s); {} attempt(s), {} retr{}</span></p>"#,
        s.total,
        s.attempts,
        s.retries,
        if s.retries == 1 { "y" } else { "ies" }
    );
    if let Some(reason) = &s.blocked_reason {
        let _ = write!(out, r#"<p class="note">blocked: {}</p>"#, esc(reason));
    }
    out.push_str(r#"<div class="grid">"#);
    // Durations.
    out.push_str("<div><h4>Duration of ended attempts</h4>");
    if s.durations.count > 0 {
        let d = &s.durations;
        let _ = write!(
            out,
            "{}<p class=\"muted\">{} attempt(s): min {}, median {}, p95 {}, max {}</p>",
            svg::duration_histogram(d),
            d.count,
            human_duration(d.min),
            human_duration(d.median),
            human_duration(d.p95),
            human_duration(d.max)
        );
    } else {
        out.push_str(r#"<p class="muted">none yet</p>"#);
    }
    out.push_str("</div>");
    // Resources.
    let r = &s.resources;
    let _ = write!(
        out,
        r#"<div><h4>Resources: used against requested</h4><table><tr><th></th><th class="num">requested</th><th class="num">used (median)</th><th class="num">used (max)</th></tr><tr><td>memory</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr><tr><td>cores</td><td class="num">{}</td><td class="num" colspan="2">CPU time {} median, efficiency {}</td></tr><tr><td>wall time</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr></table><p class="muted">{} attempt(s) measured</p>"#,
        r.requested_mem_mib
            .map_or("-".into(), |m| format!("{m} MiB")),
        opt(r.peak_rss_median_mib, " MiB", 1),
        opt(r.peak_rss_max_mib, " MiB", 1),
        r.requested_cpus.map_or("-".into(), |c| c.to_string()),
        r.cpu_median_s.map_or("-".into(), human_duration),
        r.cpu_efficiency_median
            .map_or("-".into(), |e| format!("{:.0}%", e * 100.0)),
        r.requested_time_s.map_or("no limit".into(), human_duration),
        if s.durations.count > 0 {
            human_duration(s.durations.median)
        } else {
            "-".into()
        },
        r.duration_max_s.map_or("-".into(), human_duration),
        r.measured
    );
    for a in &r.advice {
        let _ = write!(out, r#"<p class="advice">{}</p>"#, esc(a));
    }
    out.push_str("</div></div>");
    // Failures.
    if !s.failures.is_empty() {
        out.push_str("<h4>Failures by error class</h4><table class=\"failures\"><tr><th>class</th><th class=\"num\">failed attempts</th><th class=\"num\">tasks failed for good</th></tr>");
        for f in &s.failures {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(&f.class),
                f.attempts,
                f.final_tasks
            );
        }
        out.push_str("</table>");
        for f in &s.failures {
            for e in &f.examples {
                let _ = write!(
                    out,
                    r#"<div class="failure"><b>{}</b> task {} attempt {}: {}"#,
                    esc(&f.class),
                    esc(&e.task_id),
                    e.attempt,
                    esc(&e.message)
                );
                if !e.stderr_head.is_empty() {
                    let _ = write!(out, "<pre>{}</pre>", esc(&e.stderr_head.join("\n")));
                }
                out.push_str("</div>");
            }
        }
    }
    if let Some(b) = &s.benchmark {
        benchmark(out, b);
    }
    if let Some(q) = &s.qe {
        qe(out, q);
    }
    out.push_str("</section>");
}

fn benchmark(out: &mut String, b: &serde_json::Value) {
    let verdict = b.get("verdict").and_then(|v| v.as_str()).unwrap_or("?");
    let class = match verdict {
        "PASS" | "MARGINAL" | "FAIL" => verdict,
        _ => "",
    };
    let _ = write!(
        out,
        r#"<h4>MD benchmark</h4><p><span class="verdict {class}">{}</span> overhead {} ({})</p>"#,
        esc(verdict),
        opt(b.get("overhead_percent").and_then(|v| v.as_f64()), "%", 2),
        opt(b.get("overhead_s").and_then(|v| v.as_f64()), " s", 3)
    );
    if let Some(summary) = b.get("summary").and_then(|v| v.as_str()) {
        let _ = write!(out, r#"<p class="muted">{}</p>"#, esc(summary));
    }
    let result = b.get("result");
    let num = |k: &str| result.and_then(|r| r.get(k)).and_then(|v| v.as_f64());
    let (direct, ipc) = (num("direct_median_s"), num("ipc_median_s"));
    if let (Some(d), Some(i)) = (direct, ipc) {
        let peak = d.max(i).max(1e-9);
        let (w, bh) = (320.0, 18.0);
        let _ = write!(
            out,
            r##"<svg class="bench" xmlns="http://www.w3.org/2000/svg" width="460" height="52" viewBox="0 0 460 52" role="img" aria-label="direct versus IPC"><text x="0" y="14" class="tick">direct</text><rect x="60" y="2" width="{:.1}" height="{bh}" fill="#2e9e5b"/><text x="{:.1}" y="15" class="tick">{}</text><text x="0" y="40" class="tick">IPC</text><rect x="60" y="28" width="{:.1}" height="{bh}" fill="#3b7dd8"/><text x="{:.1}" y="41" class="tick">{}</text></svg>"##,
            d / peak * w,
            66.0 + d / peak * w,
            esc(&human_duration(d)),
            i / peak * w,
            66.0 + i / peak * w,
            esc(&human_duration(i))
        );
    }
    if let Some(r) = result {
        let text = |k: &str| r.get(k).map(|v| v.to_string()).unwrap_or_default();
        let _ = write!(
            out,
            r#"<table><tr><th>system</th><td>{} × {}</td><th>steps</th><td>{}</td><th>calculator</th><td>{}</td><th>device</th><td>{}</td></tr><tr><th>energy drift direct</th><td>{}</td><th>energy drift IPC</th><td>{}</td><th>repeats</th><td>{}</td><th>host</th><td>{}</td></tr></table>"#,
            esc(&text("atoms")),
            esc(r.get("element").and_then(|v| v.as_str()).unwrap_or("")),
            esc(&text("steps")),
            esc(r.get("calculator").and_then(|v| v.as_str()).unwrap_or("")),
            esc(r.get("device").and_then(|v| v.as_str()).unwrap_or("")),
            esc(&text("energy_drift_direct")),
            esc(&text("energy_drift_ipc")),
            esc(&text("repeats")),
            esc(r.get("host").and_then(|v| v.as_str()).unwrap_or(""))
        );
    }
}

fn qe(out: &mut String, q: &super::data::QeSummary) {
    let failed: u64 = q.failed_by_class.values().sum();
    let _ = write!(
        out,
        r#"<h4>SCF results</h4><p><span class="chip" style="background:#2e9e5b">{} converged</span><span class="chip" style="background:#d64541">{failed} failed</span><span class="chip" style="background:#e7a33e">{} unphysical</span></p>"#,
        q.converged, q.unphysical
    );
    if !q.failed_by_class.is_empty() {
        let parts: Vec<String> = q
            .failed_by_class
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        let _ = write!(
            out,
            r#"<p class="muted">failed for good: {}</p>"#,
            esc(&parts.join(", "))
        );
    }
    if let (Some(lo), Some(hi)) = (q.energy_min_ev, q.energy_max_ev) {
        let _ = write!(
            out,
            "<p>energy range {lo:.4} … {hi:.4} eV{}</p>",
            match (q.energy_per_atom_min_ev, q.energy_per_atom_max_ev) {
                (Some(a), Some(b)) => format!("; per atom {a:.4} … {b:.4} eV"),
                _ => String::new(),
            }
        );
    }
    if !q.rows.is_empty() {
        out.push_str(r#"<table class="qe"><tr><th>structure</th><th>formula</th><th class="num">atoms</th><th class="num">energy (eV)</th><th class="num">max |F| (eV/Å)</th><th class="num">pw.x wall</th><th class="num">attempts</th></tr>"#);
        for r in &q.rows {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td class="num">{}</td><td class="num">{:.5}</td><td class="num">{:.4}</td><td class="num">{}</td><td class="num">{}</td></tr>"#,
                esc(&r.structure),
                esc(&r.formula),
                r.atoms,
                r.energy_ev,
                r.max_force_ev_per_ang,
                human_duration(r.wall_s),
                r.attempts
            );
        }
        out.push_str("</table>");
    }
}

/// The whole page.
pub fn render(data: &ReportData) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("flow report: {} {}", data.campaign, data.version);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="generator" content="flow {}"><title>{}</title><style>{STYLE}</style></head><body data-report="flow-report-v1">"#,
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    let totals = |st: &str| -> u64 {
        data.steps
            .iter()
            .map(|s| s.counts.get(st).copied().unwrap_or(0))
            .sum()
    };
    let tasks: u64 = data.steps.iter().map(|s| s.total).sum();
    let _ = write!(
        out,
        r#"<header><h1>{}</h1><p class="muted">{} · machine {} ({}) · {} task(s), {} succeeded, {} failed, {} blocked · {} attempt(s) · generated {} · {}</p></header><main>"#,
        esc(&title),
        esc(&data.directory),
        esc(&data.machine),
        esc(&data.executor),
        tasks,
        totals("succeeded"),
        totals("failed"),
        totals("blocked"),
        data.total_attempts,
        esc(&iso_utc(data.generated_at)),
        match &data.driver {
            Some((host, pid, age)) => format!(
                "driver running (pid {pid} on {}, heartbeat {age:.0} s ago)",
                esc(host)
            ),
            None => "no driver running".into(),
        }
    );
    if !data.notes.is_empty() {
        out.push_str(r#"<section class="card" id="notes"><h2>Notes</h2>"#);
        for n in &data.notes {
            let _ = write!(out, r#"<p class="note">{}</p>"#, esc(n));
        }
        out.push_str("</section>");
    }
    let _ = write!(
        out,
        r#"<section class="card" id="dag"><h2>Steps</h2>{}{}</section>"#,
        svg::dag(&data.steps),
        legend()
    );
    let aggregated = matches!(data.timeline, super::data::Timeline::Binned { .. });
    let _ = write!(
        out,
        r#"<section class="card" id="timeline"><h2>Timeline</h2>{}{}</section>"#,
        if aggregated {
            format!(
                r#"<p class="muted">{} attempts: shown as attempts running per time bin and step (red: failures ending in the bin). <code>flow trace</code> lists every attempt.</p>"#,
                data.total_attempts
            )
        } else {
            r#"<p class="muted">One bar per attempt, pale while queued; hover for details.</p>"#
                .to_string()
        },
        svg::timeline(&data.timeline, &data.steps)
    );
    out.push_str(r#"<h2 id="per-step">Per step</h2>"#);
    for s in &data.steps {
        step_section(&mut out, s);
    }
    let _ = writeln!(out, "</main><script>{SCRIPT}</script></body></html>");
    out
}
