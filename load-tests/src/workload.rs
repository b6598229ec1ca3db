//! The seeded workload: skewed tenants, invoices with 1–10 lines in several currencies,
//! payment behaviour (on time, late, partial, never), retried requests, a small share of
//! invalid commands, optionally issue dates spread over many years.
//!
//! Commands come in lifecycle groups: every command of one invoice sits in the same batch
//! request, in order, so per-invoice order holds however many requests run at once.

use billstream_schemas::Currency;
use billstream_schemas::money::{line_amounts, push_decimal};
use rust_decimal::Decimal;
use std::fmt::Write as _;

/// SplitMix64: small, seeded, reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with the given percentage.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Shape of the workload.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Tenants.
    pub tenants: usize,
    /// Zipf exponent of tenant sizes (0 = uniform, 1 = a few huge and a long tail).
    pub skew: f64,
    /// Seed.
    pub seed: u64,
    /// Percent of invoices followed by one invalid command (half refused by the gateway,
    /// half rejected by a domain rule).
    pub invalid_pct: u64,
    /// Percent of payments sent twice with the same idempotency key.
    pub retry_pct: u64,
    /// Spread issue dates over this many past years (0: all in the current year).
    pub history_years: u32,
    /// Prefix of invoice ids, unique per run.
    pub run_id: String,
}

const CURRENCIES: [&str; 6] = ["EUR", "USD", "GBP", "JPY", "CHF", "KWD"];
const TAX_RATES: [&str; 5] = ["0", "7", "19", "20", "7.7"];

/// Counts of what was generated, by expected outcome. Every retry and every invalid item is
/// also one of `commands`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Generated {
    /// Items sent.
    pub commands: u64,
    /// Items the gateway must refuse.
    pub invalid_at_gateway: u64,
    /// Items a domain rule must reject.
    pub invalid_in_domain: u64,
    /// Repeated items (same idempotency key).
    pub retries: u64,
    /// Invoices created.
    pub invoices: u64,
}

impl Generated {
    /// The distinct commands the pipeline resolves of these: the items but the repeats of an
    /// Idempotency-Key (resolved once) and those the gateway must refuse.
    pub fn to_resolve(&self) -> u64 {
        self.commands - self.retries - self.invalid_at_gateway
    }
}

/// One command of the workload: its JSON object (a batch item; every string in it is plain
/// ASCII the generator made, so no escaping is needed) and whether it creates an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The batch item as JSON text.
    pub json: String,
    /// A `create_invoice` item.
    pub create: bool,
}

impl Item {
    fn new(create: bool, json: String) -> Self {
        Item { json, create }
    }
}

/// A `POST /v1/commands:batch` body of these items.
pub fn batch_body(items: &[Item]) -> String {
    let mut body = String::with_capacity(16 + items.iter().map(|i| i.json.len() + 1).sum::<usize>());
    body.push_str("{\"commands\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&item.json);
    }
    body.push_str("]}");
    body
}

/// The generator.
#[derive(Debug, Clone)]
pub struct Workload {
    rng: Rng,
    config: WorkloadConfig,
    cumulative: Vec<f64>,
    /// `TAX_RATES` parsed.
    tax_rates: [Decimal; TAX_RATES.len()],
    next_invoice: u64,
    /// What was generated so far.
    pub generated: Generated,
}

impl Workload {
    /// A generator for `config`.
    pub fn new(config: WorkloadConfig) -> Self {
        let n = config.tenants.max(1);
        let mut cumulative = Vec::with_capacity(n);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / (rank as f64).powf(config.skew);
            cumulative.push(sum);
        }
        let tax_rates = TAX_RATES.map(|r| r.parse().unwrap_or_else(|_| unreachable!("listed tax rates are decimals")));
        Workload { rng: Rng::new(config.seed), config, cumulative, tax_rates, next_invoice: 0, generated: Generated::default() }
    }

    /// A tenant index, skewed: tenant 0 is the largest.
    pub fn pick_tenant(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let x = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
        self.cumulative.iter().position(|&c| x < c).unwrap_or(0)
    }

    /// Commands for `tenant`, whole invoice lifecycles, about `size` items.
    pub fn batch(&mut self, tenant: usize, size: usize) -> Vec<Item> {
        let mut out = Vec::with_capacity(size + 8);
        while out.len() < size {
            self.lifecycle(tenant, &mut out);
        }
        self.generated.commands += out.len() as u64;
        out
    }

    fn lifecycle(&mut self, tenant: usize, out: &mut Vec<Item>) {
        // Each item is written into one buffer (decimals by `push_decimal`): with a `format!`
        // per item and `Display` per amount, generating commands took about a microsecond of
        // the machine's CPU per command, which a run on one machine takes from the pipeline.
        let rng = &mut self.rng;
        let n = self.next_invoice;
        self.next_invoice += 1;
        self.generated.invoices += 1;
        let currency = {
            let k = (tenant + rng.below(3) as usize) % CURRENCIES.len();
            CURRENCIES[k].parse::<Currency>().unwrap_or_else(|_| unreachable!("listed currencies are ISO 4217"))
        };
        let year = 2026 - if self.config.history_years > 0 { rng.below(u64::from(self.config.history_years)) as i32 } else { 0 };
        let month = 1 + rng.below(11) as u32;
        let issue = format!("{year:04}-{month:02}-{:02}", 1 + rng.below(28));
        let due = format!("{year:04}-{:02}-{:02}", month + 1, 1 + rng.below(28));
        let invoice_id = format!("{}-{n}", self.config.run_id);
        let mut total = Decimal::ZERO;
        let mut json = String::with_capacity(256 + 96 * 10);
        json.push_str(r#"{"type":"create_invoice","invoice_id":""#);
        json.push_str(&invoice_id);
        json.push_str(r#"","customer_id":"cust-"#);
        // Drawn after the lines, as the generator always has (same seed, same commands).
        let customer_at = json.len();
        json.push_str(r#"","currency":""#);
        json.push_str(currency.code());
        json.push_str(r#"","issue_date":""#);
        json.push_str(&issue);
        json.push_str(r#"","due_date":""#);
        json.push_str(&due);
        json.push_str(r#"","lines":["#);
        for i in 0..=rng.below(10).min(9) {
            let quantity = Decimal::from(rng.below(20) + 1);
            let unit_price = currency.round(Decimal::new((rng.below(100_000) + 1) as i64, 2));
            let k = rng.below(TAX_RATES.len() as u64) as usize;
            if let Ok(a) = line_amounts(currency, quantity, unit_price, self.tax_rates[k]) {
                total += a.net + a.tax;
            }
            if i > 0 {
                json.push(',');
            }
            json.push_str(r#"{"description":"usage","quantity":""#);
            push_decimal(&mut json, quantity);
            json.push_str(r#"","unit_price":""#);
            push_decimal(&mut json, unit_price);
            json.push_str(r#"","tax_rate":""#);
            json.push_str(TAX_RATES[k]);
            json.push_str(r#""}"#);
        }
        json.push_str("]}");
        json.insert_str(customer_at, &rng.below(10_000).to_string());
        out.push(Item::new(true, json));
        if !rng.chance(95) {
            return;
        }
        out.push(Item::new(false, format!(r#"{{"type":"issue_invoice","invoice_id":"{invoice_id}"}}"#)));
        let pay = |amount: Decimal, on: &str, k: u32| {
            let mut json = String::with_capacity(200);
            json.push_str(r#"{"type":"record_payment","invoice_id":""#);
            json.push_str(&invoice_id);
            json.push_str(r#"","amount":""#);
            push_decimal(&mut json, amount);
            json.push_str(r#"","currency":""#);
            json.push_str(currency.code());
            json.push_str(r#"","method":"bank_transfer","received_on":""#);
            json.push_str(on);
            let _ = write!(json, r#"","idempotency_key":"{invoice_id}-p{k}"}}"#);
            Item::new(false, json)
        };
        let mut paid = Decimal::ZERO;
        match rng.below(100) {
            0..=49 => {
                out.push(pay(total, &issue, 0));
                paid = total;
            }
            50..=64 => {
                out.push(pay(total, &due, 0));
                paid = total;
            }
            65..=84 => {
                let unit = Decimal::new(1, currency.minor_units());
                let part = ((total / unit / Decimal::TWO).trunc() * unit).max(Decimal::ZERO);
                if part > Decimal::ZERO {
                    out.push(pay(part, &issue, 0));
                    paid = part;
                }
            }
            _ => {}
        }
        if paid > Decimal::ZERO
            && rng.chance(self.config.retry_pct)
            && let Some(again) = out.last().cloned()
        {
            out.push(again);
            self.generated.retries += 1;
        }
        if rng.chance(self.config.invalid_pct) {
            if rng.chance(50) {
                out.push(Item::new(false, format!(
                    r#"{{"type":"record_payment","invoice_id":"{invoice_id}","amount":"1.00","currency":"EURO","method":"card","idempotency_key":"{invoice_id}-bad"}}"#
                )));
                self.generated.invalid_at_gateway += 1;
            } else {
                out.push(pay(total - paid + Decimal::ONE, &issue, 9));
                self.generated.invalid_in_domain += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkloadConfig {
        WorkloadConfig { tenants: 50, skew: 1.0, seed: 7, invalid_pct: 2, retry_pct: 5, history_years: 0, run_id: "r".into() }
    }

    #[test]
    fn seeded_and_skewed() {
        let (mut a, mut b) = (Workload::new(config()), Workload::new(config()));
        let items = a.batch(0, 100);
        assert_eq!(items, b.batch(0, 100), "same seed, same commands");
        let body: serde_json::Value = serde_json::from_str(&batch_body(&items)).expect("valid JSON");
        assert_eq!(body["commands"].as_array().map(Vec::len), Some(items.len()));
        assert_eq!(body["commands"][0]["type"], "create_invoice");
        let mut hits = [0u32; 50];
        for _ in 0..10_000 {
            hits[a.pick_tenant()] += 1;
        }
        assert!(hits[0] > 10 * hits[49].max(1), "tenant 0 dominates: {} vs {}", hits[0], hits[49]);
    }
}
