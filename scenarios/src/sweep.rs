//! Sweeps: many seeds of one scenario, run in parallel across seeds, failures grouped so that one
//! bug is one entry.
//!
//! Parallelism is across seeds only: each worker thread builds its own cluster (a `Cluster` holds
//! `Rc`s and never crosses threads) and each run stays single-threaded and deterministic.
//!
//! **Shards.** `--shard I/N` keeps the seeds `s` with `s mod N == I`. The split depends only on
//! the seed, so N machines (a CI matrix, a Kubernetes Indexed Job with `JOB_COMPLETION_INDEX`)
//! share one sweep, and the shards' JSON summaries merge ([`merge`]) into exactly the summary of
//! the unsharded sweep.
//!
//! **Signatures.** A failure's signature is its first violation's invariant and message with the
//! details that vary from seed to seed taken out: numbers, pod, node and object names, uids.

use crate::repro::{write_atomically, ReproViolation};
use kubedst_core::harness::{RunReport, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Seeds `start..end` (end excluded), as `A..B` or `A..=B` on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedRange {
    pub start: u64,
    pub end: u64,
}

impl SeedRange {
    pub fn parse(text: &str) -> Result<SeedRange, String> {
        let expected = "expected a seed range such as 0..1000 (end excluded) or 0..=999";
        let (start, end, inclusive) = if let Some((start, end)) = text.split_once("..=") {
            (start, end, true)
        } else if let Some((start, end)) = text.split_once("..") {
            (start, end, false)
        } else {
            return Err(format!("`{text}`: {expected}"));
        };
        let number = |part: &str| {
            part.trim().parse::<u64>().map_err(|_| format!("`{text}`: `{part}` is not a seed (a number); {expected}"))
        };
        let (start, end) = (number(start)?, number(end)?);
        let end = if inclusive {
            end.checked_add(1).ok_or_else(|| format!("`{text}`: the range ends past the largest seed"))?
        } else {
            end
        };
        if end <= start {
            return Err(format!("`{text}`: the range is empty; {expected}"));
        }
        Ok(SeedRange { start, end })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// Shard `index` of `count`: the seeds `s` with `s % count == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// `I/N`, with `0 <= I < N`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let expected = "expected a shard as I/N with 0 <= I < N, such as 0/4";
        let (index, count) = text.split_once('/').ok_or_else(|| format!("`{text}`: {expected}"))?;
        let index: u64 =
            index.trim().parse().map_err(|_| format!("`{text}`: `{index}` is not a number; {expected}"))?;
        let count: u64 =
            count.trim().parse().map_err(|_| format!("`{text}`: `{count}` is not a number; {expected}"))?;
        if count == 0 || index >= count {
            return Err(format!("`{text}`: {expected}"));
        }
        Ok(Shard { index, count })
    }

    pub fn holds(&self, seed: u64) -> bool {
        seed % self.count == self.index
    }
}

/// The seeds of a range that belong to a shard (all of them without one), in order.
pub fn shard_seeds(range: SeedRange, shard: Option<Shard>) -> Vec<u64> {
    (range.start..range.end).filter(|seed| shard.is_none_or(|shard| shard.holds(*seed))).collect()
}

/// Runs `run_one` for each seed on `jobs` threads and returns the results in seed order.
/// `progress(done, total)` is called after each run, from the worker that finished it.
pub fn run_parallel<R, F, P>(seeds: &[u64], jobs: usize, run_one: F, progress: P) -> Vec<R>
where
    R: Send,
    F: Fn(u64) -> R + Sync,
    P: Fn(usize, usize) + Sync,
{
    let jobs = jobs.clamp(1, seeds.len().max(1));
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..seeds.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(seed) = seeds.get(index) else { break };
                let result = run_one(*seed);
                results.lock().expect("no worker panics while holding the results")[index] = Some(result);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, seeds.len());
            });
        }
    });
    results
        .into_inner()
        .expect("the workers are done")
        .into_iter()
        .map(|result| result.expect("every seed ran"))
        .collect()
}

/// How one seed of a sweep went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    /// The run could not be set up (for example a fault plan naming an unknown machine).
    Error,
}

/// One seed's result, as a sweep summary lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedResult {
    pub seed: u64,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_hash: String,
    #[serde(default)]
    pub events: u64,
    #[serde(default)]
    pub virtual_time_ns: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<ReproViolation>,
    /// For failures and errors: what groups them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl SeedResult {
    pub fn of(seed: u64, result: &Result<RunReport, String>) -> SeedResult {
        match result {
            Ok(report) => {
                let violations: Vec<ReproViolation> = report.violations.iter().map(ReproViolation::from).collect();
                let failed = report.verdict == Verdict::Fail;
                SeedResult {
                    seed,
                    outcome: if failed { Outcome::Fail } else { Outcome::Pass },
                    trace_hash: report.trace_hash.clone(),
                    events: report.events,
                    virtual_time_ns: report.virtual_time_ns,
                    signature: if failed { primary_signature(&violations) } else { None },
                    violations,
                }
            }
            Err(message) => SeedResult {
                seed,
                outcome: Outcome::Error,
                trace_hash: String::new(),
                events: 0,
                virtual_time_ns: 0,
                violations: Vec::new(),
                signature: Some(format!("error: {}", normalize(message))),
            },
        }
    }
}

/// The signature of one violation: `invariant: message` with the varying details taken out.
pub fn signature(violation: &ReproViolation) -> String {
    format!("{}: {}", violation.invariant, normalize(&violation.message))
}

/// The signature of a failing run: that of its first violation (the earliest, ties in report
/// order), which is the closest to the cause; later ones are often its consequences.
pub fn primary_signature(violations: &[ReproViolation]) -> Option<String> {
    violations.iter().enumerate().min_by_key(|(index, violation)| (violation.at_ns, *index)).map(|(_, v)| signature(v))
}

/// Every signature of a run's violations, for "does it still fail the same way" (shrink).
pub fn all_signatures(violations: &[ReproViolation]) -> Vec<String> {
    let mut signatures: Vec<String> = violations.iter().map(signature).collect();
    signatures.sort();
    signatures.dedup();
    signatures
}

/// Takes out what varies between seeds of one bug: the word after `pod`, `node`, `uid` and the
/// like becomes a placeholder, `namespace/name` becomes `<object>`, a name with a generated
/// five-character suffix becomes `<name>`, and every run of digits becomes `N`.
pub fn normalize(message: &str) -> String {
    const NAMED: [(&str, &str); 6] = [
        ("pod", "<pod>"),
        ("node", "<node>"),
        ("machine", "<machine>"),
        ("uid", "<uid>"),
        ("lease", "<lease>"),
        ("replicaset", "<replicaset>"),
    ];
    let mut words: Vec<String> = Vec::new();
    let mut placeholder_next: Option<&str> = None;
    for word in message.split_whitespace() {
        // Punctuation around a word stays; only its core is replaced.
        let core_start = word.find(|c: char| c.is_alphanumeric()).unwrap_or(word.len());
        let core_end = word.rfind(|c: char| c.is_alphanumeric()).map_or(core_start, |end| end + 1);
        let (before, core, after) = (&word[..core_start], &word[core_start..core_end], &word[core_end..]);
        let replaced = if core.is_empty() {
            word.to_string()
        } else if let Some(placeholder) = placeholder_next.take() {
            format!("{before}{placeholder}{after}")
        } else if core.contains('/')
            && core.split('/').all(|part| !part.is_empty() && !part.chars().all(|c| c.is_ascii_digit()))
        {
            format!("{before}<object>{after}")
        } else if has_generated_suffix(core) {
            format!("{before}<name>{after}")
        } else {
            format!("{before}{}{after}", digits_to_n(core))
        };
        placeholder_next =
            NAMED.iter().find(|(keyword, _)| core.eq_ignore_ascii_case(keyword) && after.is_empty()).map(|(_, p)| *p);
        words.push(replaced);
    }
    words.join(" ")
}

/// `web-7c9d5-x2k4q`: a name that ends in `-` and five characters of Kubernetes' generateName
/// alphabet, at least one of them a digit or the name has two such parts.
fn has_generated_suffix(name: &str) -> bool {
    const ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";
    match name.rsplit_once('-') {
        Some((prefix, suffix)) => {
            !prefix.is_empty() && suffix.len() == 5 && suffix.chars().all(|c| ALPHABET.contains(c))
        }
        None => false,
    }
}

fn digits_to_n(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut in_digits = false;
    for c in word.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('N');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// The failures that share a signature: one bug, one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureGroup {
    pub signature: String,
    pub invariant: String,
    /// The first seed's violation, in full.
    pub example: String,
    /// Every seed that failed this way, in order.
    pub seeds: Vec<u64>,
    /// How to see it again: `kubedst run SCENARIO --seed FIRST`.
    pub replay: String,
    /// The repro file written for the first seed, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repro: Option<String>,
}

/// A sweep's result: what `--format json` prints and what [`merge`] combines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub scenario: String,
    pub seeds: SeedRange,
    /// The shard this summary covers; absent for a whole sweep (or a merge of all shards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub runs: u64,
    pub passed: u64,
    pub failed: u64,
    pub errors: u64,
    /// Failure groups, the most frequent first (ties: the earliest first seed).
    pub groups: Vec<FailureGroup>,
    /// Every seed's result, in seed order.
    pub results: Vec<SeedResult>,
    /// Wall-clock time of the sweep (the sum over shards after a merge); not part of the verdict.
    #[serde(default)]
    pub wall_ms: u64,
}

impl SweepSummary {
    /// Builds the summary of these results; `repro_path(seed)` names the repro file written for a
    /// group's first seed, if the caller writes them.
    pub fn new(
        scenario: &str,
        seeds: SeedRange,
        shard: Option<Shard>,
        mut results: Vec<SeedResult>,
        wall_ms: u64,
        repro_path: &dyn Fn(u64) -> Option<String>,
    ) -> SweepSummary {
        results.sort_by_key(|result| result.seed);
        let count = |outcome: Outcome| results.iter().filter(|result| result.outcome == outcome).count() as u64;
        let mut by_signature: BTreeMap<String, Vec<&SeedResult>> = BTreeMap::new();
        for result in results.iter().filter(|result| result.outcome != Outcome::Pass) {
            let signature = result.signature.clone().unwrap_or_else(|| "unknown".into());
            by_signature.entry(signature).or_default().push(result);
        }
        let mut groups: Vec<FailureGroup> = by_signature
            .into_iter()
            .map(|(signature, members)| {
                let first = members[0];
                let first_violation =
                    first.violations.iter().enumerate().min_by_key(|(index, violation)| (violation.at_ns, *index));
                FailureGroup {
                    invariant: first_violation.map_or("error".into(), |(_, violation)| violation.invariant.clone()),
                    example: first_violation.map_or_else(
                        || signature.clone(),
                        |(_, violation)| format!("{}: {}", violation.invariant, violation.message),
                    ),
                    signature,
                    seeds: members.iter().map(|member| member.seed).collect(),
                    replay: format!("kubedst run {scenario} --seed {}", first.seed),
                    repro: repro_path(first.seed),
                }
            })
            .collect();
        groups.sort_by(|a, b| b.seeds.len().cmp(&a.seeds.len()).then(a.seeds[0].cmp(&b.seeds[0])));
        SweepSummary {
            scenario: scenario.to_string(),
            seeds,
            shard,
            runs: results.len() as u64,
            passed: count(Outcome::Pass),
            failed: count(Outcome::Fail),
            errors: count(Outcome::Error),
            groups,
            results,
            wall_ms,
        }
    }

    /// 0 all held, 1 an invariant was violated, 2 a run could not be set up.
    pub fn exit_code(&self) -> i32 {
        if self.errors > 0 {
            2
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }

    /// The human summary: counts, then one paragraph per failure group.
    pub fn render_text(&self) -> String {
        let mut text = String::new();
        let shard = self.shard.map_or(String::new(), |shard| format!(" (shard {}/{})", shard.index, shard.count));
        let _ = writeln!(
            text,
            "sweep {} seeds {}..{}{shard}: {} runs, {} passed, {} failed, {} errors in {} ms",
            self.scenario,
            self.seeds.start,
            self.seeds.end,
            self.runs,
            self.passed,
            self.failed,
            self.errors,
            self.wall_ms
        );
        for group in &self.groups {
            let seeds: Vec<String> = group.seeds.iter().take(20).map(u64::to_string).collect();
            let more =
                if group.seeds.len() > 20 { format!(" and {} more", group.seeds.len() - 20) } else { String::new() };
            let _ = writeln!(text, "\nFAIL x{}: {}", group.seeds.len(), group.signature);
            let _ = writeln!(text, "  first: {}", group.example);
            let _ = writeln!(text, "  seeds: {}{more}", seeds.join(", "));
            let _ = writeln!(text, "  replay: {}", group.replay);
            if let Some(repro) = &group.repro {
                let _ = writeln!(text, "  repro:  kubedst replay {repro}");
            }
        }
        let verdict = match self.exit_code() {
            0 => "all invariants held".to_string(),
            1 => format!("{} failure group(s)", self.groups.len()),
            _ => format!("{} run(s) could not be set up", self.errors),
        };
        let _ = writeln!(text, "\nverdict: {verdict}");
        text
    }

    /// JUnit XML: one testcase per seed, failures carrying their violations and replay command.
    pub fn render_junit(&self) -> String {
        let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            xml,
            "<testsuites><testsuite name=\"kubedst sweep {}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">",
            escape(&self.scenario),
            self.runs,
            self.failed,
            self.errors
        );
        for result in &self.results {
            let name = format!("seed {}", result.seed);
            let _ = write!(xml, "  <testcase classname=\"kubedst.{}\" name=\"{name}\"", escape(&self.scenario));
            match result.outcome {
                Outcome::Pass => xml.push_str("/>\n"),
                Outcome::Fail | Outcome::Error => {
                    let tag = if result.outcome == Outcome::Fail { "failure" } else { "error" };
                    let signature = result.signature.as_deref().unwrap_or("");
                    let mut body = String::new();
                    for violation in &result.violations {
                        let _ =
                            writeln!(body, "{} at {} ns: {}", violation.invariant, violation.at_ns, violation.message);
                    }
                    let _ = writeln!(body, "replay: kubedst run {} --seed {}", self.scenario, result.seed);
                    let _ = writeln!(
                        xml,
                        ">\n    <{tag} message=\"{}\">{}</{tag}>\n  </testcase>",
                        escape(signature),
                        escape(&body)
                    );
                }
            }
        }
        xml.push_str("</testsuite></testsuites>\n");
        xml
    }

    /// Writes the JUnit XML atomically.
    pub fn write_junit(&self, path: &Path) -> Result<(), String> {
        write_atomically(path, self.render_junit().as_bytes())
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Merges shard summaries into the summary of the whole sweep. They must be of one scenario and
/// one seed range, and no seed may appear twice. The groups are rebuilt from the seeds' results;
/// a group's repro is the one its first seed's shard wrote.
pub fn merge(summaries: &[SweepSummary]) -> Result<SweepSummary, String> {
    let first = summaries.first().ok_or("nothing to merge: give at least one summary")?;
    let mut results: Vec<SeedResult> = Vec::new();
    let mut repros: BTreeMap<u64, String> = BTreeMap::new();
    let mut shards: Vec<Shard> = Vec::new();
    for summary in summaries {
        if summary.scenario != first.scenario || summary.seeds != first.seeds {
            return Err(format!(
                "cannot merge a sweep of {} seeds {}..{} with one of {} seeds {}..{}",
                summary.scenario,
                summary.seeds.start,
                summary.seeds.end,
                first.scenario,
                first.seeds.start,
                first.seeds.end
            ));
        }
        shards.extend(summary.shard);
        results.extend(summary.results.iter().cloned());
        for group in &summary.groups {
            if let Some(repro) = &group.repro {
                repros.insert(group.seeds[0], repro.clone());
            }
        }
    }
    results.sort_by_key(|result| result.seed);
    if let Some(pair) = results.windows(2).find(|pair| pair[0].seed == pair[1].seed) {
        return Err(format!("seed {} appears in more than one summary (the same shard given twice?)", pair[0].seed));
    }
    // Complete when every shard 0..N of one N is here: the merge is then the whole sweep.
    let complete = match shards.first() {
        None => true,
        Some(shard) => {
            let mut indices: Vec<u64> =
                shards.iter().filter(|other| other.count == shard.count).map(|other| other.index).collect();
            indices.sort_unstable();
            indices.dedup();
            indices.len() as u64 == shard.count
        }
    };
    let wall_ms = summaries.iter().map(|summary| summary.wall_ms).sum();
    let shard = if complete { None } else { first.shard };
    Ok(SweepSummary::new(&first.scenario, first.seeds, shard, results, wall_ms, &|seed| repros.get(&seed).cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_and_refuse_nonsense() {
        assert_eq!(SeedRange::parse("0..10").unwrap(), SeedRange { start: 0, end: 10 });
        assert_eq!(SeedRange::parse("5..=7").unwrap(), SeedRange { start: 5, end: 8 });
        for bad in ["10..10", "9..3", "a..4", "12", "1..x", ""] {
            assert!(SeedRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_split_seeds_by_remainder_and_cover_each_seed_once() {
        assert_eq!(Shard::parse("1/3").unwrap(), Shard { index: 1, count: 3 });
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let range = SeedRange { start: 7, end: 40 };
        let mut all: Vec<u64> = (0..4).flat_map(|index| shard_seeds(range, Some(Shard { index, count: 4 }))).collect();
        all.sort_unstable();
        assert_eq!(all, shard_seeds(range, None));
        assert_eq!(shard_seeds(range, Some(Shard { index: 2, count: 4 }))[..3], [10, 14, 18]);
    }

    #[test]
    fn normalizing_removes_names_and_numbers_but_keeps_the_cause() {
        let a = normalize("pod default/web-7c9d5-x2k4q (uid 0a1b-22) moved from node node-1 to node node-2");
        let b = normalize("pod default/web-6f8b7-bbq9z (uid ffff-01) moved from node node-0 to node node-3");
        assert_eq!(a, b);
        assert_eq!(a, "pod <pod> (uid <uid>) moved from node <node> to node <node>");
        let overcommit = normalize("node node-2 is overcommitted: cpu 2100m > 2000m");
        assert_eq!(overcommit, "node <node> is overcommitted: cpu Nm > Nm");
        assert_ne!(normalize("revision 5 came after revision 9"), normalize("pod a-bbbbb moved"));
        assert_eq!(
            normalize("deployment default/web: 3/4 ready pods of the current template, 1 other pods"),
            "deployment <object>: N/N ready pods of the current template, N other pods"
        );
    }

    #[test]
    fn parallel_runs_come_back_in_seed_order_with_progress_for_each() {
        let seeds: Vec<u64> = (0..50).collect();
        let calls = AtomicUsize::new(0);
        let squares = run_parallel(
            &seeds,
            4,
            |seed| seed * seed,
            |_, _| {
                calls.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(squares, seeds.iter().map(|seed| seed * seed).collect::<Vec<_>>());
        assert_eq!(calls.load(Ordering::Relaxed), 50);
    }

    fn failing(seed: u64, node: &str) -> SeedResult {
        let violations = vec![ReproViolation {
            invariant: "pod-binds-once".into(),
            at_ns: seed * 10,
            message: format!("pod default/web-7c9d5-x2k4q (uid {seed}) moved from node {node} to node node-9"),
        }];
        SeedResult {
            seed,
            outcome: Outcome::Fail,
            trace_hash: format!("{seed:016x}"),
            events: 1,
            virtual_time_ns: 1,
            signature: primary_signature(&violations),
            violations,
        }
    }

    fn passing(seed: u64) -> SeedResult {
        SeedResult {
            seed,
            outcome: Outcome::Pass,
            trace_hash: "0".into(),
            events: 1,
            virtual_time_ns: 1,
            violations: vec![],
            signature: None,
        }
    }

    #[test]
    fn one_bug_on_many_seeds_is_one_group_and_junit_lists_each_seed() {
        let range = SeedRange { start: 0, end: 4 };
        let results = vec![passing(0), failing(1, "node-1"), failing(2, "node-4"), passing(3)];
        let summary = SweepSummary::new("demo", range, None, results, 5, &|seed| Some(format!("r/{seed}.json")));
        assert_eq!((summary.runs, summary.passed, summary.failed, summary.exit_code()), (4, 2, 2, 1));
        assert_eq!(summary.groups.len(), 1);
        assert_eq!(summary.groups[0].seeds, vec![1, 2]);
        assert_eq!(summary.groups[0].replay, "kubedst run demo --seed 1");
        assert_eq!(summary.groups[0].repro.as_deref(), Some("r/1.json"));
        let junit = summary.render_junit();
        assert_eq!(junit.matches("<testcase ").count(), 4);
        assert_eq!(junit.matches("<failure ").count(), 2);
        assert!(junit.contains("replay: kubedst run demo --seed 2"), "{junit}");
        assert!(
            !junit.contains("web-7c9d5-x2k4q (uid 1) moved from node node-1 to node node-9\""),
            "messages are escaped"
        );
    }

    #[test]
    fn merging_shards_gives_the_whole_sweep_and_refuses_overlaps() {
        let range = SeedRange { start: 0, end: 9 };
        let all: Vec<SeedResult> =
            (0..9).map(|seed| if seed % 4 == 1 { failing(seed, "node-1") } else { passing(seed) }).collect();
        let whole = SweepSummary::new("demo", range, None, all.clone(), 0, &|_| None);
        let shards: Vec<SweepSummary> = (0..3)
            .map(|index| {
                let shard = Shard { index, count: 3 };
                let mine = all.iter().filter(|result| shard.holds(result.seed)).cloned().collect();
                SweepSummary::new("demo", range, Some(shard), mine, 0, &|_| None)
            })
            .collect();
        assert_eq!(merge(&shards).unwrap(), whole);
        let partial = merge(&shards[..2]).unwrap();
        assert_eq!(partial.shard, Some(Shard { index: 0, count: 3 }), "an incomplete merge says it is partial");
        let error = merge(&[shards[0].clone(), shards[0].clone()]).unwrap_err();
        assert!(error.contains("more than one summary"), "{error}");
    }
}
