//! The pipeline under test: one the harness starts (`billstream up` as a child process on the
//! embedded store, against a broker the harness owns), or one given by address.

use anyhow::{Context, Result, anyhow, bail};
use billstream::broker::EmbeddedBroker;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The scratch topic of the `raw` measurement.
pub const RAW_TOPIC: &str = "billstream.load.raw";

/// A tenant the harness drives.
#[derive(Debug, Clone)]
pub struct TenantKey {
    /// Tenant id (for direct Kafka producers).
    pub tenant_id: String,
    /// API key (for HTTP).
    pub api_key: String,
}

/// Where to send load.
pub struct Target {
    /// Gateway base URL.
    pub base: String,
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Tenants.
    pub tenants: Vec<TenantKey>,
    /// Process id of the pipeline, when the harness started it (for CPU and memory).
    pub pid: Option<u32>,
    child: Option<Child>,
    /// The broker the harness runs for a pipeline it started, in this process.
    broker: Option<EmbeddedBroker>,
}

impl Target {
    /// CPU seconds so far of the embedded broker the harness runs (its `rdk:mock` threads), when
    /// it runs one: the pipeline's own figure leaves it out.
    pub fn broker_cpu_s(&self) -> Option<f64> {
        self.broker.as_ref().and_then(|_| own_threads_cpu_s("rdk:mock"))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM for a graceful stop; the harness has what it measured already.
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim)
}

/// The `billstream` binary next to this one (both are built into the same target dir).
pub fn default_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().ok_or_else(|| anyhow!("no directory for {}", me.display()))?;
    // Test binaries live one level down, in deps/.
    for candidate in [dir.join("billstream"), dir.join("../billstream")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!("no billstream binary next to {}; build it (cargo build --release) or pass --binary", me.display())
}

/// Starts a broker, creates tenants in a fresh store at `data_dir`, starts `billstream up`.
/// `env` goes to every process that opens the store: `tenant create` creates the store's
/// tables, and their options (memtable size, compression) are kept with them, so settings
/// given to `up` alone would never reach a table.
pub fn spawn(binary: &Path, data_dir: &Path, tenants: usize, partitions: i32, env: &[(String, String)]) -> Result<Target> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir).with_context(|| format!("clearing {}", data_dir.display()))?;
    }
    let broker = EmbeddedBroker::start_with_topics(1, partitions, &[RAW_TOPIC])?;
    let mut keys = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let out = Command::new(binary)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["tenant", "create", "--name", &format!("load-{i}")])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .with_context(|| format!("running {}", binary.display()))?;
        if !out.status.success() {
            bail!("tenant create failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let (Some(id), Some(key)) = (field(&text, "tenant_id:"), field(&text, "api_key:")) else {
            bail!("tenant create printed no id and key: {text}");
        };
        keys.push(TenantKey { tenant_id: id.to_string(), api_key: key.to_string() });
    }
    let mut cmd = Command::new(binary);
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args(["up", "--brokers", broker.bootstrap(), "--listen", "127.0.0.1:0", "--partitions", &partitions.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The broker is the harness's embedded one, with its 5 MiB per partition: the pipeline
    // must hold writes back as it would with its own embedded broker.
    cmd.env("BILLSTREAM__HTTP__MAX_BACKLOG_BYTES", (4u64 << 20).to_string());
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd.spawn().with_context(|| format!("starting {} up", binary.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(url) = line.strip_prefix("http: ") {
                    break url.to_string();
                }
            }
            _ => bail!("billstream up exited before printing its address"),
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Target {
        base,
        bootstrap: broker.bootstrap().to_string(),
        tenants: keys,
        pid: Some(child.id()),
        child: Some(child),
        broker: Some(broker),
    })
}

/// A pipeline given by address; `keys` are `tenant_id:api_key` pairs.
pub fn remote(base: &str, bootstrap: &str, keys: &[String]) -> Result<Target> {
    let tenants = keys
        .iter()
        .map(|k| {
            let (id, key) = k.split_once(':').ok_or_else(|| anyhow!("--tenant expects TENANT_ID:API_KEY, got {k:?}"))?;
            Ok(TenantKey { tenant_id: id.into(), api_key: key.into() })
        })
        .collect::<Result<Vec<_>>>()?;
    if tenants.is_empty() {
        bail!("a remote target needs at least one --tenant TENANT_ID:API_KEY");
    }
    Ok(Target { base: base.trim_end_matches('/').into(), bootstrap: bootstrap.into(), tenants, pid: None, child: None, broker: None })
}

/// CPU seconds (user + system) of a process or thread, from its `/proc` stat line.
fn cpu_s(stat: &str) -> Option<f64> {
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

/// CPU seconds (user + system) and peak resident memory (MiB) of a process, from /proc.
pub fn proc_stats(pid: u32) -> Option<(f64, f64)> {
    let cpu = cpu_s(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: f64 = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some((cpu, hwm_kb / 1024.0))
}

/// CPU seconds so far of this process's threads named `comm`; `None` if it has none.
fn own_threads_cpu_s(comm: &str) -> Option<f64> {
    threads_cpu_s("self")?.remove(comm)
}

/// CPU seconds so far of a process's live threads, summed by thread name (`comm`), from
/// `/proc/<pid>/task`. `pid` is a number or `self`. Threads that ended are not there: their
/// time is in the process's total only.
pub fn threads_cpu_s(pid: &str) -> Option<BTreeMap<String, f64>> {
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let dir = task.path();
        // A thread that ends meanwhile is skipped.
        if let (Ok(comm), Some(cpu)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")).ok().as_deref().and_then(cpu_s),
        ) {
            *by_name.entry(comm.trim_end().to_string()).or_insert(0.0) += cpu;
        }
    }
    Some(by_name)
}

/// CPU seconds each thread name used between two [`threads_cpu_s`] readings, and under
/// `(ended threads)` what the process used (`process_used`, from its own stat) beyond them:
/// threads that ended are in the process's total only. A name below zero (a thread of it
/// ended, taking its time before the first reading out of the sum) counts zero, the rest of
/// its threads' time going to the ended threads. The process and its threads are read a
/// moment apart, so the split is near, not exactly, the total.
pub fn cpu_by_thread(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, process_used: f64) -> BTreeMap<String, f64> {
    let mut used: BTreeMap<String, f64> =
        after.iter().map(|(name, a)| (name.clone(), (a - before.get(name).copied().unwrap_or(0.0)).max(0.0))).collect();
    let live: f64 = used.values().sum();
    used.insert("(ended threads)".to_string(), (process_used - live).max(0.0));
    used
}
