//! The report in four formats: a table for people, JSON and CSV for programs, and a Prometheus
//! textfile (node_exporter textfile collector conventions: `# HELP`/`# TYPE` once per metric,
//! label values escaped, no timestamps).

use super::aggregate::{Aggregate, Sample, Totals, UserStats, Window};
use super::parse::{unescape, Reason};

/// The reasons a policy can log without refusing (see `render.rs`).
const LOGGED_ONLY: [&str; 2] = ["forged", "sender_domain"];

/// How a mail with an origin but no script (`script=""`: cron, CLI) is listed.
pub const NO_SCRIPT: &str = "(no script)";
use super::stamp::{format_stamp, stamp_to_epoch, Stamp};
use serde::Serialize;
use std::fmt::Write as _;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object.
    Json,
    /// One row per user, with a header.
    Csv,
    /// Prometheus textfile (node_exporter).
    Prometheus,
}

/// Sort order of the users (descending counts; `user` ascending by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SortKey {
    /// Mails accepted.
    Mails,
    /// Recipients.
    Recipients,
    /// Bytes.
    Bytes,
    /// Rejections.
    Rejections,
    /// User name.
    User,
}

/// One user's line of the report.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The ident.
    pub user: String,
    /// Mails accepted.
    pub mails: u64,
    /// Recipients.
    pub recipients: u64,
    /// Bytes (`S=`).
    pub bytes: u64,
    /// All rejections.
    pub rejections: u64,
    /// Rejections per reason (all reasons, in column order).
    pub rejections_by_reason: Vec<(&'static str, u64)>,
    /// Policy violations logged but let through: forged origin stripped, sender domain in
    /// `log` mode (not counted in `rejections`).
    pub logged_by_reason: Vec<(&'static str, u64)>,
    /// `==` lines.
    pub deferrals: u64,
    /// `**` lines.
    pub bounces: u64,
    /// First arrival or rejection.
    pub first_seen: Option<String>,
    /// Last arrival or rejection.
    pub last_seen: Option<String>,
    #[serde(skip)]
    last_stamp: Stamp,
    /// The scripts that sent most, with their counts.
    pub top_scripts: Vec<(String, u64)>,
}

/// What the report says, ready to print in any format.
#[derive(Debug)]
pub struct Summary {
    /// Files read, oldest first, as given.
    pub files: Vec<String>,
    /// First and last timestamp in the logs.
    pub log_first: Stamp,
    /// See `log_first`.
    pub log_last: Stamp,
    /// The window asked for.
    pub window: Window,
    /// Counts that belong to no user.
    pub totals: Totals,
    /// Messages still open at the end of the logs.
    pub open_messages: usize,
    /// Users with activity in the window (before `--user`/`--top`).
    pub users_seen: usize,
    /// The rows to print.
    pub rows: Vec<Row>,
    /// The first unparseable lines.
    pub samples: Vec<Sample>,
}

/// Which rows to print.
#[derive(Clone, Debug)]
pub struct Select {
    /// Only these users (all if empty).
    pub users: Vec<String>,
    /// Sort order.
    pub sort: SortKey,
    /// At most this many rows.
    pub top: Option<usize>,
    /// Scripts listed per user.
    pub scripts: usize,
}

fn row(name: &[u8], s: &UserStats, scripts: usize) -> Row {
    let mut top: Vec<(String, u64)> = s
        .scripts
        .iter()
        .map(|(k, v)| {
            let name = if k.is_empty() {
                NO_SCRIPT.to_string()
            } else {
                String::from_utf8_lossy(&unescape(k)).into_owned()
            };
            (name, v)
        })
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(scripts);
    let fmt = |t: Stamp| (t != 0).then(|| format_stamp(t));
    Row {
        user: String::from_utf8_lossy(name).into_owned(),
        mails: s.mails,
        recipients: s.rcpts,
        bytes: s.bytes,
        rejections: s.rejected(),
        logged_by_reason: Reason::ALL
            .iter()
            .map(|r| (r.name(), s.logged[*r as usize]))
            .collect(),
        rejections_by_reason: Reason::ALL
            .iter()
            .map(|r| (r.name(), s.rejections[*r as usize]))
            .collect(),
        deferrals: s.deferrals,
        bounces: s.bounces,
        first_seen: fmt(s.first),
        last_seen: fmt(s.last),
        last_stamp: s.last,
        top_scripts: top,
    }
}

impl Summary {
    /// The summary of `agg` for `files`, rows chosen by `sel`.
    pub fn new(agg: &Aggregate, files: Vec<String>, window: Window, sel: &Select) -> Summary {
        let mut rows: Vec<Row> = agg
            .users()
            .filter(|(_, s)| !s.is_empty())
            .map(|(n, s)| row(n, s, sel.scripts))
            .collect();
        let users_seen = rows.len();
        if !sel.users.is_empty() {
            rows.retain(|r| sel.users.contains(&r.user));
        }
        rows.sort_by(|a, b| {
            let key = |r: &Row| match sel.sort {
                SortKey::Mails => r.mails,
                SortKey::Recipients => r.recipients,
                SortKey::Bytes => r.bytes,
                SortKey::Rejections => r.rejections,
                SortKey::User => 0,
            };
            key(b).cmp(&key(a)).then_with(|| a.user.cmp(&b.user))
        });
        if let Some(n) = sel.top {
            rows.truncate(n);
        }
        Summary {
            files,
            log_first: agg.first_line,
            log_last: agg.last_stamp(),
            window,
            totals: agg.totals(),
            open_messages: agg.open_messages(),
            users_seen,
            rows,
            samples: agg.samples.clone(),
        }
    }

    /// Renders in `format`.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
            Format::Prometheus => self.prometheus(),
        }
    }

    fn window_text(&self) -> String {
        match (self.window.since, self.window.until) {
            (None, None) => "all".into(),
            (Some(a), None) => format!("since {}", format_stamp(a)),
            (None, Some(b)) => format!("until {}", format_stamp(b)),
            (Some(a), Some(b)) => format!("{} .. {}", format_stamp(a), format_stamp(b)),
        }
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let span = if self.log_first == 0 {
            "no timestamped lines".to_string()
        } else {
            format!(
                "{} .. {}",
                format_stamp(self.log_first),
                format_stamp(self.log_last)
            )
        };
        let _ = writeln!(
            out,
            "exim-policy report: {} file(s), {} lines, logs {span}, window {}",
            self.files.len(),
            self.totals.lines,
            self.window_text()
        );
        let head = [
            "USER",
            "MAILS",
            "RCPTS",
            "BYTES",
            "REJECTED",
            "DEFERRED",
            "BOUNCED",
            "FIRST SEEN",
            "LAST SEEN",
            "REJECTED BY REASON",
            "TOP SCRIPTS",
        ];
        let mut cells: Vec<Vec<String>> = vec![head.iter().map(|s| s.to_string()).collect()];
        for r in &self.rows {
            let mut reasons: Vec<String> = r
                .rejections_by_reason
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect();
            reasons.extend(
                r.logged_by_reason
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, n)| format!("{k}-logged-only={n}")),
            );
            let scripts: Vec<String> = r
                .top_scripts
                .iter()
                .map(|(s, n)| format!("{s} ({n})"))
                .collect();
            cells.push(vec![
                r.user.clone(),
                r.mails.to_string(),
                r.recipients.to_string(),
                r.bytes.to_string(),
                r.rejections.to_string(),
                r.deferrals.to_string(),
                r.bounces.to_string(),
                r.first_seen.clone().unwrap_or_else(|| "-".into()),
                r.last_seen.clone().unwrap_or_else(|| "-".into()),
                if reasons.is_empty() {
                    "-".into()
                } else {
                    reasons.join(" ")
                },
                if scripts.is_empty() {
                    "-".into()
                } else {
                    scripts.join(", ")
                },
            ]);
        }
        let ncol = head.len();
        let widths: Vec<usize> = (0..ncol)
            .map(|c| {
                cells
                    .iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for r in &cells {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                let pad = widths[c] - cell.chars().count();
                let numeric = (1..=6).contains(&c);
                if c > 0 {
                    line.push_str("  ");
                }
                if numeric {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if c + 1 < ncol {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if self.rows.len() < self.users_seen {
            let _ = writeln!(
                out,
                "({} of {} users shown)",
                self.rows.len(),
                self.users_seen
            );
        }
        let t = &self.totals;
        let _ = writeln!(
            out,
            "not per user: {} message(s) from Exim itself (bounces, warnings: <> without host), {} mail(s) without ident (remote hosts)",
            t.system_messages, t.without_ident
        );
        let nr: u64 = t.rejections_without_ident.iter().sum();
        let reasons: Vec<String> = Reason::ALL
            .iter()
            .filter(|r| t.rejections_without_ident[**r as usize] > 0)
            .map(|r| format!("{}={}", r.name(), t.rejections_without_ident[*r as usize]))
            .collect();
        let _ = writeln!(
            out,
            "rejections without ident: {nr}{}",
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(" "))
            }
        );
        let _ = writeln!(
            out,
            "deferrals/bounces of mails whose arrival is not in these logs: {}/{}; open messages at end: {}{}",
            t.unattributed_deferrals,
            t.unattributed_bounces,
            self.open_messages,
            if t.evicted > 0 { format!(" ({} dropped from the join table: raise --max-open)", t.evicted) } else { String::new() }
        );
        let _ = write!(out, "unparseable lines: {}", t.unparseable);
        for s in &self.samples {
            let _ = write!(out, "\n  {} at byte {}: {:?}", s.file, s.offset, s.text);
        }
        out.push('\n');
        out
    }

    fn json(&self) -> String {
        #[derive(Serialize)]
        struct J<'a> {
            files: &'a [String],
            log_first: Option<String>,
            log_last: Option<String>,
            since: Option<String>,
            until: Option<String>,
            lines: u64,
            unparseable_lines: u64,
            unparseable_samples: Vec<serde_json::Value>,
            users_seen: usize,
            users: Vec<serde_json::Value>,
            system_messages: u64,
            mails_without_ident: u64,
            rejections_without_ident: serde_json::Map<String, serde_json::Value>,
            unattributed_deferrals: u64,
            unattributed_bounces: u64,
            open_messages: usize,
            evicted_messages: u64,
        }
        let f = |t: Stamp| (t != 0).then(|| format_stamp(t));
        let reasons = |a: &[(&str, u64)]| -> serde_json::Map<String, serde_json::Value> {
            a.iter()
                .map(|(k, v)| (k.to_string(), (*v).into()))
                .collect()
        };
        let t = &self.totals;
        let users = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "user": r.user, "mails": r.mails, "recipients": r.recipients, "bytes": r.bytes,
                    "rejections": r.rejections, "rejections_by_reason": reasons(&r.rejections_by_reason),
                    "logged_only_by_reason": reasons(&r.logged_by_reason),
                    "deferrals": r.deferrals, "bounces": r.bounces,
                    "first_seen": r.first_seen, "last_seen": r.last_seen,
                    "top_scripts": r.top_scripts.iter().map(|(s, n)| serde_json::json!({"script": s, "mails": n})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let nr: Vec<(&str, u64)> = Reason::ALL
            .iter()
            .map(|r| (r.name(), t.rejections_without_ident[*r as usize]))
            .collect();
        let j = J {
            files: &self.files,
            log_first: f(self.log_first),
            log_last: f(self.log_last),
            since: self.window.since.map(format_stamp),
            until: self.window.until.map(format_stamp),
            lines: t.lines,
            unparseable_lines: t.unparseable,
            unparseable_samples: self
                .samples
                .iter()
                .map(|s| serde_json::json!({"file": s.file, "offset": s.offset, "text": s.text}))
                .collect(),
            users_seen: self.users_seen,
            users,
            system_messages: t.system_messages,
            mails_without_ident: t.without_ident,
            rejections_without_ident: reasons(&nr),
            unattributed_deferrals: t.unattributed_deferrals,
            unattributed_bounces: t.unattributed_bounces,
            open_messages: self.open_messages,
            evicted_messages: t.evicted,
        };
        let mut s =
            serde_json::to_string_pretty(&j).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }

    fn csv(&self) -> String {
        fn field(out: &mut String, s: &str) {
            if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
                out.push('"');
                out.push_str(&s.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(s);
            }
        }
        let mut out = String::from("user,mails,recipients,bytes,rejections");
        for r in Reason::ALL {
            let _ = write!(out, ",rejections_{}", r.name());
        }
        for r in LOGGED_ONLY {
            let _ = write!(out, ",logged_only_{r}");
        }
        out.push_str(",deferrals,bounces,first_seen,last_seen,top_scripts\n");
        for r in &self.rows {
            field(&mut out, &r.user);
            let _ = write!(
                out,
                ",{},{},{},{}",
                r.mails, r.recipients, r.bytes, r.rejections
            );
            for (_, n) in &r.rejections_by_reason {
                let _ = write!(out, ",{n}");
            }
            for (_, n) in r
                .logged_by_reason
                .iter()
                .filter(|(k, _)| LOGGED_ONLY.contains(k))
            {
                let _ = write!(out, ",{n}");
            }
            let _ = write!(out, ",{},{},", r.deferrals, r.bounces);
            field(&mut out, r.first_seen.as_deref().unwrap_or(""));
            out.push(',');
            field(&mut out, r.last_seen.as_deref().unwrap_or(""));
            out.push(',');
            let scripts: Vec<String> = r
                .top_scripts
                .iter()
                .map(|(s, n)| format!("{s}={n}"))
                .collect();
            field(&mut out, &scripts.join(";"));
            out.push('\n');
        }
        out
    }

    fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric =
            |name: &str, help: &str, samples: &mut dyn Iterator<Item = (String, u64)>| {
                let _ = writeln!(out, "# HELP exim_policy_{name} {help}");
                let _ = writeln!(out, "# TYPE exim_policy_{name} gauge");
                for (labels, v) in samples {
                    if labels.is_empty() {
                        let _ = writeln!(out, "exim_policy_{name} {v}");
                    } else {
                        let _ = writeln!(out, "exim_policy_{name}{{{labels}}} {v}");
                    }
                }
            };
        let user = |r: &Row| format!("user=\"{}\"", escape_label(&r.user));
        let rows = &self.rows;
        let per_user = |f: fn(&Row) -> u64| rows.iter().map(move |r| (user(r), f(r)));
        metric(
            "user_mails",
            "Mails accepted from the user (Exim <= lines by ident U=) in the logs read.",
            &mut per_user(|r| r.mails),
        );
        metric(
            "user_recipients",
            "Recipients of the user's mails.",
            &mut per_user(|r| r.recipients),
        );
        metric(
            "user_bytes",
            "Size of the user's mails in bytes (S=).",
            &mut per_user(|r| r.bytes),
        );
        metric(
            "user_rejections",
            "Rejected connections, senders, recipients or messages of the user, by reason.",
            &mut rows.iter().flat_map(|r| {
                r.rejections_by_reason
                    .iter()
                    .map(move |(k, n)| (format!("{},reason=\"{k}\"", user(r)), *n))
            }),
        );
        metric(
            "user_policy_logged_only",
            "Policy violations of the user logged but let through (forged origin stripped, sender domain in log mode), by reason.",
            &mut rows.iter().flat_map(|r| {
                r.logged_by_reason
                    .iter()
                    .filter(|(k, _)| LOGGED_ONLY.contains(k))
                    .map(move |(k, n)| (format!("{},reason=\"{k}\"", user(r)), *n))
            }),
        );
        metric(
            "user_deferrals",
            "Deferred delivery attempts (==) of the user's mails.",
            &mut per_user(|r| r.deferrals),
        );
        metric(
            "user_bounces",
            "Failed addresses (**) of the user's mails.",
            &mut per_user(|r| r.bounces),
        );
        metric(
            "user_last_seen_timestamp_seconds",
            "Time of the user's last mail or rejection, seconds since the epoch.",
            &mut rows
                .iter()
                .filter_map(|r| stamp_to_epoch(r.last_stamp).map(|t| (user(r), t.max(0) as u64))),
        );
        metric(
            "user_script_mails",
            "Mails per sending script (the scripts that sent most per user), from the logged origin.",
            &mut rows.iter().flat_map(|r| {
                r.top_scripts.iter().map(move |(s, n)| (format!("{},script=\"{}\"", user(r), escape_label(s)), *n))
            }),
        );
        let t = &self.totals;
        metric(
            "system_messages",
            "Messages generated by Exim itself (bounces, warnings), not counted for any user.",
            &mut std::iter::once((String::new(), t.system_messages)),
        );
        metric(
            "mails_without_ident",
            "Mails accepted without an ident (from remote hosts).",
            &mut std::iter::once((String::new(), t.without_ident)),
        );
        metric(
            "rejections_without_ident",
            "Rejections of connections without an ident, by reason.",
            &mut Reason::ALL.iter().map(|r| {
                (
                    format!("reason=\"{}\"", r.name()),
                    t.rejections_without_ident[*r as usize],
                )
            }),
        );
        metric(
            "unattributed_deferrals",
            "Deferrals of mails whose arrival is not in the logs read.",
            &mut std::iter::once((String::new(), t.unattributed_deferrals)),
        );
        metric(
            "unattributed_bounces",
            "Bounces of mails whose arrival is not in the logs read.",
            &mut std::iter::once((String::new(), t.unattributed_bounces)),
        );
        metric(
            "log_lines",
            "Lines read from the logs.",
            &mut std::iter::once((String::new(), t.lines)),
        );
        metric(
            "unparseable_lines",
            "Lines that could not be parsed (garbage, truncated lines).",
            &mut std::iter::once((String::new(), t.unparseable)),
        );
        metric(
            "open_messages",
            "Messages arrived and not completed at the end of the logs.",
            &mut std::iter::once((String::new(), self.open_messages as u64)),
        );
        if let Some(e) = stamp_to_epoch(self.log_last).filter(|_| self.log_last != 0) {
            metric(
                "log_last_timestamp_seconds",
                "Time of the last line read, seconds since the epoch.",
                &mut std::iter::once((String::new(), e.max(0) as u64)),
            );
        }
        out
    }
}

/// Escapes a Prometheus label value: backslash, double quote and newline.
pub fn escape_label(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
