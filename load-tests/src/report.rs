//! The report: a table for people, a JSON document for machines.

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{Value, json};

/// Percentiles of one latency, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Samples.
    pub count: u64,
}

impl Latency {
    /// From a histogram in microseconds.
    pub fn from_us(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| (v as f64 / 10.0).round() / 100.0;
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            count: h.len(),
        }
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// steady, max, query or raw.
    pub scenario: String,
    /// Commands acknowledged per second of driving.
    pub accepted_per_s: f64,
    /// Commands resolved (applied or rejected, seen on the events topic) per second, from
    /// the first send to the last resolution.
    pub applied_per_s: f64,
    /// Same messages, produced and consumed through the same broker, no processing.
    pub raw_consume_per_s: Option<f64>,
    /// applied_per_s / raw_consume_per_s.
    pub pipeline_over_raw: Option<f64>,
    /// Accepted but never seen resolved.
    pub lost: u64,
    /// CPU seconds of the pipeline process per 1,000 accepted commands.
    pub cpu_s_per_1k: Option<f64>,
    /// Peak resident memory of the pipeline process, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Latencies.
    pub latency_ms: Value,
    /// For `max`: the highest rate sustained, commands/s.
    pub max_sustained_per_s: Option<f64>,
    /// Counts and settings behind the figures.
    pub details: Value,
}

impl Report {
    /// The JSON latency object.
    /// `query`: the `query` scenario's point lookups and list pages.
    pub fn latency(ack: &Histogram<u64>, applied: &Histogram<u64>, query: Option<(&Histogram<u64>, &Histogram<u64>)>) -> Value {
        let mut v = json!({"ingest_ack": Latency::from_us(ack), "ingest_to_applied": Latency::from_us(applied)});
        if let Some((lookups, lists)) = query {
            v["query"] = json!(Latency::from_us(lookups));
            v["query_list"] = json!(Latency::from_us(lists));
        }
        v
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.2}{unit}"));
        // CPU seconds per 1,000 commands, to the 0.1 ms the report measures them to.
        let cpu = |v: Option<f64>| v.map(|v| format!("{v:.4} s"));
        let mut out = format!(
            "scenario            {}\naccepted/s          {:.0}\napplied/s           {:.0}\nraw consume/s       {}\npipeline / raw      {}\nlost                {}\ncpu s / 1k          {}\npeak rss            {}\n",
            self.scenario,
            self.accepted_per_s,
            self.applied_per_s,
            opt(self.raw_consume_per_s, ""),
            opt(self.pipeline_over_raw, ""),
            self.lost,
            cpu(self.cpu_s_per_1k).unwrap_or_else(|| "n/a".into()),
            opt(self.peak_rss_mb, " MiB"),
        );
        let detail = |k: &str| cpu(self.details[k].as_f64());
        match (detail("cpu_s_per_1k_embedded_broker"), detail("cpu_s_per_1k_harness")) {
            (Some(b), Some(h)) => out.push_str(&format!("  and elsewhere     broker {b}, harness {h}\n")),
            (None, Some(h)) => out.push_str(&format!("  and elsewhere     harness {h}\n")),
            _ => {}
        }
        // s per 1k commands is ms per command: printed as µs per command, largest first.
        if let Some(threads) = self.details["cpu_s_per_1k_by_thread"].as_object() {
            let mut t: Vec<(&String, f64)> = threads.iter().filter_map(|(n, v)| Some((n, v.as_f64()? * 1000.0))).collect();
            t.sort_by(|a, b| b.1.total_cmp(&a.1));
            let list: Vec<String> = t.iter().filter(|(_, us)| *us >= 0.05).map(|(n, us)| format!("{n} {us:.1}")).collect();
            out.push_str(&format!("  by thread, µs/cmd {}\n", list.join(", ")));
        }
        let store = &self.details["store"];
        if let (Some(l0), Some(disk)) = (store["l0_tables_max"].as_object(), store["disk_mib_total"].as_f64()) {
            let mut l0: Vec<(&String, u64)> = l0.iter().filter_map(|(n, v)| Some((n, v.as_u64()?))).filter(|(_, v)| *v > 0).collect();
            l0.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            let list: Vec<String> = l0.iter().take(4).map(|(n, v)| format!("{n} {v}")).collect();
            let list = if list.is_empty() { "none".to_string() } else { list.join(", ") };
            out.push_str(&format!("store               {disk:.1} MiB on disk; most level-0 tables at once: {list}\n"));
        }
        let mib = |w: &Value, k: &str| w[k].as_f64().unwrap_or(0.0);
        if let Some(by_table) = store["written_mib"].as_object() {
            let (flushed, compacted) = (mib(&store["written_mib_total"], "flushed"), mib(&store["written_mib_total"], "compacted"));
            let all = flushed + compacted;
            if all > 0.0 {
                let mut t: Vec<(&String, f64)> = by_table.iter().map(|(n, w)| (n, mib(w, "flushed") + mib(w, "compacted"))).collect();
                t.sort_by(|a, b| b.1.total_cmp(&a.1));
                let list: Vec<String> = t.iter().take(4).map(|(n, w)| format!("{n} {:.0} %", w / all * 100.0)).collect();
                out.push_str(&format!(
                    "store written       {all:.1} MiB: flushed {flushed:.1}, compacted {compacted:.1} ({:.1} per byte flushed); {}\n",
                    compacted / flushed.max(f64::MIN_POSITIVE),
                    list.join(", ")
                ));
            }
            let open = &store["written_mib_since_open_total"];
            let (flushed, compacted) = (mib(open, "flushed"), mib(open, "compacted"));
            if flushed > 0.0 {
                out.push_str(&format!(
                    "  since store open  flushed {flushed:.1} MiB, compacted {compacted:.1} ({:.1} per byte flushed)\n",
                    compacted / flushed
                ));
            }
        }
        if let (Some(n), Some(r)) = (self.details["preloaded_invoices"].as_u64(), self.details["store_fill_ratio"].as_f64()) {
            out.push_str(&format!("store before run    {n} invoices, {r:.1}x what the run added\n"));
        }
        if let Some(m) = self.max_sustained_per_s {
            // The rule passes a step that applied a little less than its rate (`--min-applied`):
            // say what that step applied.
            let applied = self.details["max_steps"].as_array().and_then(|steps| {
                steps.iter().find(|s| s["passed"] == true && s["rate"].as_f64() == Some(m)).and_then(|s| s["applied_per_s"].as_f64())
            });
            match applied {
                Some(a) => out.push_str(&format!("max sustained/s     {m:.0} (that step applied {a:.0}/s)\n")),
                None => out.push_str(&format!("max sustained/s     {m:.0}\n")),
            }
        }
        let q = &self.details["query"];
        if let (Some(found), Some(missing), Some(lists), Some(errors)) =
            (q["lookups_found"].as_u64(), q["lookups_not_found"].as_u64(), q["lists"].as_u64(), q["errors"].as_u64())
        {
            out.push_str(&format!("reads               {found} found, {missing} not found (yet), {lists} list pages, {errors} errors\n"));
        }
        if let Some(obj) = self.latency_ms.as_object() {
            out.push_str("latency ms          p50      p90      p99      p99.9    max\n");
            for (name, l) in obj {
                let f = |k: &str| l[k].as_f64().unwrap_or(0.0);
                out.push_str(&format!(
                    "  {name:<17} {:<8.2} {:<8.2} {:<8.2} {:<8.2} {:.2}\n",
                    f("p50"), f("p90"), f("p99"), f("p999"), f("max")
                ));
            }
        }
        out
    }
}
