//! Per-user counts from a stream of lines, the message-id join, and the merge of partial
//! aggregates (one per file or file chunk) in chronological order.
//!
//! Memory: one entry per distinct user (and per distinct script of a user), one per OPEN
//! message (arrived, not yet `Completed`), and one per message id seen without its arrival in
//! this part of the log (resolved at merge time). Both message tables are bounded by `cap`: an
//! open message whose `Completed` never comes (frozen forever, or its line lost) is dropped in
//! generations, oldest first, and counted as `evicted`.

use super::parse::{parse_line, Arrival, Event, MsgId, Origin, Reason};
use super::stamp::Stamp;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A small fast hasher (multiply-fold) for message ids and user names: the keys are not chosen
/// by an attacker in a way that matters here (a user name is an ident that passed the policy).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(a));
        }
        let r = chunks.remainder();
        if !r.is_empty() {
            let mut a = [0u8; 8];
            a[..r.len()].copy_from_slice(r);
            self.write_u64(u64::from_le_bytes(a) ^ ((r.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        let m = u128::from(self.0 ^ n) * u128::from(K);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// HashMap with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The time window of the report: `since` inclusive, `until` exclusive.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// First stamp counted.
    pub since: Option<Stamp>,
    /// First stamp no longer counted.
    pub until: Option<Stamp>,
}

impl Window {
    #[inline]
    fn contains(&self, s: Stamp) -> bool {
        self.since.is_none_or(|a| s >= a) && self.until.is_none_or(|b| s < b)
    }
}

/// Counts for one user.
#[derive(Clone, Debug, Default)]
pub struct UserStats {
    /// Messages accepted (`<=` with this `U=`).
    pub mails: u64,
    /// Their recipients: the `for` list, or the deliveries and failures when it is not logged.
    pub rcpts: u64,
    /// Sum of `S=`.
    pub bytes: u64,
    /// Rejections of this user's connections, senders, recipients or messages, per [`Reason`].
    pub rejections: [u64; 6],
    /// Policy violations logged but let through (forged origin stripped, sender domain in
    /// `log` mode), per [`Reason`].
    pub logged: [u64; 6],
    /// `==` lines of this user's messages.
    pub deferrals: u64,
    /// `**` lines of this user's messages.
    pub bounces: u64,
    /// First and last arrival or rejection (0 = none).
    pub first: Stamp,
    /// See `first`.
    pub last: Stamp,
    /// Mails per sending script (from the policy's origin line).
    pub scripts: FastMap<Box<[u8]>, u64>,
}

impl UserStats {
    #[inline]
    fn seen(&mut self, s: Stamp) {
        if self.first == 0 || s < self.first {
            self.first = s;
        }
        if s > self.last {
            self.last = s;
        }
    }

    /// Total rejections.
    pub fn rejected(&self) -> u64 {
        self.rejections.iter().sum()
    }

    /// Whether anything was counted.
    pub fn is_empty(&self) -> bool {
        self.mails == 0
            && self.rejected() == 0
            && self.logged.iter().all(|n| *n == 0)
            && self.deferrals == 0
            && self.bounces == 0
            && self.scripts.is_empty()
    }

    fn absorb(&mut self, o: UserStats) {
        self.mails += o.mails;
        self.rcpts += o.rcpts;
        self.bytes += o.bytes;
        for (a, b) in self.rejections.iter_mut().zip(o.rejections) {
            *a += b;
        }
        for (a, b) in self.logged.iter_mut().zip(o.logged) {
            *a += b;
        }
        self.deferrals += o.deferrals;
        self.bounces += o.bounces;
        if o.first != 0 {
            self.seen(o.first);
        }
        if o.last != 0 {
            self.seen(o.last);
        }
        for (k, v) in o.scripts {
            *self.scripts.entry(k).or_default() += v;
        }
    }
}

/// Counts that belong to no user.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    /// Lines read.
    pub lines: u64,
    /// Lines that could not be parsed (no timestamp, truncated arrival or rejection).
    pub unparseable: u64,
    /// Indented continuation lines of multi-line entries (ignored).
    pub continuations: u64,
    /// Exim's own messages (bounces, warnings: `<= <>` without a host), not a user's mail.
    pub system_messages: u64,
    /// Messages accepted without an ident (`U=`): from remote hosts.
    pub without_ident: u64,
    /// Rejections without an ident, per [`Reason`].
    pub rejections_without_ident: [u64; 6],
    /// Deferrals and bounces of messages whose arrival is not in the logs read (or not a user's).
    pub unattributed_deferrals: u64,
    /// See `unattributed_deferrals`.
    pub unattributed_bounces: u64,
    /// Open messages dropped from the bounded join table.
    pub evicted: u64,
}

impl Totals {
    fn absorb(&mut self, o: &Totals) {
        self.lines += o.lines;
        self.unparseable += o.unparseable;
        self.continuations += o.continuations;
        self.system_messages += o.system_messages;
        self.without_ident += o.without_ident;
        for (a, b) in self
            .rejections_without_ident
            .iter_mut()
            .zip(o.rejections_without_ident)
        {
            *a += b;
        }
        self.unattributed_deferrals += o.unattributed_deferrals;
        self.unattributed_bounces += o.unattributed_bounces;
        self.evicted += o.evicted;
    }
}

/// Where an unparseable line was (the first few are kept for the report).
#[derive(Clone, Debug)]
pub struct Sample {
    /// File name.
    pub file: String,
    /// Byte offset of the line (in the decompressed stream for gzip).
    pub offset: u64,
    /// The start of the line, lossily decoded.
    pub text: String,
}

/// How many unparseable lines are quoted in the report.
pub const MAX_SAMPLES: usize = 3;

/// `Open::user` of a message that is not a user's (Exim's own, or from a remote host): its
/// later lines are recognised and dropped, not left unresolved.
const NOBODY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Open {
    user: u32,
    /// The arrival is inside the window (its deliveries count as recipients).
    counted: bool,
    /// No `for` list was logged: count deliveries and failures as recipients.
    count_deliveries: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Pending {
    deferrals: u32,
    bounces: u32,
    /// `=>`/`->`/`>>`/`*>`/`**` lines, whatever their time.
    finals: u32,
    completed: bool,
}

/// Open messages: two generations, so that the table stays bounded without a clock.
#[derive(Debug, Default)]
struct JoinTable {
    cur: FastMap<MsgId, Open>,
    old: FastMap<MsgId, Open>,
}

impl JoinTable {
    #[inline]
    fn get(&self, id: &MsgId) -> Option<Open> {
        self.cur.get(id).or_else(|| self.old.get(id)).copied()
    }
    /// Inserts; returns how many entries were dropped to stay under `cap`.
    #[inline]
    fn insert(&mut self, id: MsgId, o: Open, cap: usize) -> u64 {
        let mut dropped = 0;
        if self.cur.len() >= cap / 2 {
            dropped = self.old.len() as u64;
            self.old = std::mem::take(&mut self.cur);
        }
        self.cur.insert(id, o);
        dropped
    }
    #[inline]
    fn remove(&mut self, id: &MsgId) -> bool {
        self.cur.remove(id).is_some() || self.old.remove(id).is_some()
    }
    fn len(&self) -> usize {
        self.cur.len() + self.old.len()
    }
}

/// Per-user counts over a stretch of log, mergeable with the stretch that follows it.
#[derive(Debug)]
pub struct Aggregate {
    window: Window,
    cap: usize,
    index: FastMap<Box<[u8]>, u32>,
    users: Vec<(Box<[u8]>, UserStats)>,
    last_user: u32,
    open: JoinTable,
    unresolved: FastMap<MsgId, Pending>,
    /// Counts that belong to no user.
    pub totals: Totals,
    /// Stamp of the first and last timestamped line (0 = none).
    pub first_line: Stamp,
    /// See `first_line`.
    pub last_line: Stamp,
    /// The first unparseable lines.
    pub samples: Vec<Sample>,
}

impl Aggregate {
    /// An empty aggregate counting inside `window`, with at most `cap` open messages.
    pub fn new(window: Window, cap: usize) -> Aggregate {
        Aggregate {
            window,
            cap: cap.max(2),
            index: FastMap::default(),
            users: Vec::new(),
            last_user: 0,
            open: JoinTable::default(),
            unresolved: FastMap::default(),
            totals: Totals::default(),
            first_line: 0,
            last_line: 0,
            samples: Vec::new(),
        }
    }

    #[inline]
    fn user(&mut self, name: &[u8]) -> u32 {
        // The origin line and the arrival of a message name the same user, one after the other.
        if let Some((n, _)) = self.users.get(self.last_user as usize) {
            if **n == *name {
                return self.last_user;
            }
        }
        let i = match self.index.get(name) {
            Some(&i) => i,
            None => {
                let i = self.users.len() as u32;
                self.index.insert(name.into(), i);
                self.users.push((name.into(), UserStats::default()));
                i
            }
        };
        self.last_user = i;
        i
    }

    /// The events of a message that did not arrive in this part of the log; `None` when the
    /// table is full or the message already completed here (later events cannot be joined).
    #[inline]
    fn pending(&mut self, id: MsgId) -> Option<&mut Pending> {
        if self.unresolved.len() >= self.cap && !self.unresolved.contains_key(&id) {
            return None;
        }
        Some(self.unresolved.entry(id).or_default()).filter(|p| !p.completed)
    }

    /// Counts one line (without its newline). Returns false if it was unparseable.
    #[inline]
    pub fn line(&mut self, line: &[u8]) -> bool {
        self.totals.lines += 1;
        let (stamp, event) = parse_line(line);
        let Some(stamp) = stamp else {
            if event == Event::Continuation {
                self.totals.continuations += 1;
                return true;
            }
            self.totals.unparseable += 1;
            return false;
        };
        if self.first_line == 0 {
            self.first_line = stamp;
        }
        if stamp > self.last_line {
            self.last_line = stamp;
        }
        let inside = self.window.contains(stamp);
        match event {
            Event::Arrival(a) => self.arrival(stamp, inside, a),
            Event::Delivery(id) => self.final_line(id, false, inside),
            Event::Bounce(id) => self.final_line(id, true, inside),
            Event::Defer(id) => {
                if let Some(o) = self.open.get(&id) {
                    if inside && o.user != NOBODY {
                        self.users[o.user as usize].1.deferrals += 1;
                    }
                } else if let Some(p) = self.pending(id) {
                    p.deferrals += u32::from(inside);
                } else if inside {
                    self.totals.unattributed_deferrals += 1;
                }
            }
            Event::Completed(id) => {
                if !self.open.remove(&id) {
                    if let Some(p) = self.pending(id) {
                        p.completed = true;
                    }
                }
            }
            Event::Rejection { user, reason } => {
                if inside {
                    // An ident refused as unusable is not a user: count it with the connections
                    // that had none.
                    match user.filter(|_| reason != Reason::NoIdent) {
                        Some(u) => {
                            let i = self.user(u) as usize;
                            let st = &mut self.users[i].1;
                            st.rejections[reason as usize] += 1;
                            st.seen(stamp);
                        }
                        None => self.totals.rejections_without_ident[reason as usize] += 1,
                    }
                }
            }
            Event::Origin(Origin { user, script }) => {
                if inside {
                    let i = self.user(user) as usize;
                    let scripts = &mut self.users[i].1.scripts;
                    match scripts.get_mut(script) {
                        Some(n) => *n += 1,
                        None => {
                            scripts.insert(script.into(), 1);
                        }
                    }
                }
            }
            Event::Logged { user, reason } => {
                if inside {
                    let i = self.user(user) as usize;
                    let st = &mut self.users[i].1;
                    st.logged[reason as usize] += 1;
                    st.seen(stamp);
                }
            }
            Event::Other => {}
            Event::Continuation => self.totals.continuations += 1,
            Event::Unparseable => {
                self.totals.unparseable += 1;
                return false;
            }
        }
        true
    }

    #[inline]
    fn arrival(&mut self, stamp: Stamp, inside: bool, a: Arrival<'_>) {
        let nobody = Open {
            user: NOBODY,
            counted: false,
            count_deliveries: false,
        };
        if a.system {
            self.totals.system_messages += u64::from(inside);
            self.totals.evicted += self.open.insert(a.id, nobody, self.cap);
            return;
        }
        let Some(name) = a.user else {
            self.totals.without_ident += u64::from(inside);
            self.totals.evicted += self.open.insert(a.id, nobody, self.cap);
            return;
        };
        let u = self.user(name);
        if inside {
            let st = &mut self.users[u as usize].1;
            st.mails += 1;
            st.bytes += a.bytes;
            st.rcpts += u64::from(a.rcpts.unwrap_or(0));
            st.seen(stamp);
        }
        let open = Open {
            user: u,
            counted: inside,
            count_deliveries: a.rcpts.is_none(),
        };
        self.totals.evicted += self.open.insert(a.id, open, self.cap);
    }

    #[inline]
    fn final_line(&mut self, id: MsgId, bounce: bool, inside: bool) {
        if let Some(o) = self.open.get(&id) {
            if o.user == NOBODY {
                return;
            }
            let st = &mut self.users[o.user as usize].1;
            if o.counted && o.count_deliveries {
                st.rcpts += 1;
            }
            if bounce && inside {
                st.bounces += 1;
            }
        } else if let Some(p) = self.pending(id) {
            p.finals += 1;
            p.bounces += u32::from(bounce && inside);
        } else if bounce && inside {
            self.totals.unattributed_bounces += 1;
        }
    }

    /// Notes where an unparseable line was (keeps the first [`MAX_SAMPLES`]).
    pub fn sample(&mut self, file: &str, offset: u64, line: &[u8]) {
        if self.samples.len() < MAX_SAMPLES {
            let cut = &line[..line.len().min(120)];
            self.samples.push(Sample {
                file: file.to_string(),
                offset,
                text: String::from_utf8_lossy(cut).into_owned(),
            });
        }
    }

    /// Appends `later`, the aggregate of the log that follows this one: its users are merged by
    /// name, and its events for messages that arrived here are given to their users.
    pub fn merge(&mut self, later: Aggregate) {
        let mut remap = Vec::with_capacity(later.users.len());
        for (name, st) in later.users {
            let i = self.user(&name);
            self.users[i as usize].1.absorb(st);
            remap.push(i);
        }
        for (id, p) in later.unresolved {
            if let Some(o) = self.open.get(&id) {
                if o.user != NOBODY {
                    let st = &mut self.users[o.user as usize].1;
                    st.deferrals += u64::from(p.deferrals);
                    st.bounces += u64::from(p.bounces);
                    if o.counted && o.count_deliveries {
                        st.rcpts += u64::from(p.finals);
                    }
                }
                if p.completed {
                    self.open.remove(&id);
                }
            } else {
                self.totals.unattributed_deferrals += u64::from(p.deferrals);
                self.totals.unattributed_bounces += u64::from(p.bounces);
            }
        }
        for (id, mut o) in later.open.old.into_iter().chain(later.open.cur) {
            if o.user != NOBODY {
                o.user = remap[o.user as usize];
            }
            self.totals.evicted += self.open.insert(id, o, self.cap);
        }
        self.totals.absorb(&later.totals);
        if self.first_line == 0 || (later.first_line != 0 && later.first_line < self.first_line) {
            self.first_line = later.first_line;
        }
        self.last_line = self.last_line.max(later.last_line);
        for s in later.samples {
            if self.samples.len() < MAX_SAMPLES {
                self.samples.push(s);
            }
        }
    }

    /// The users and their counts.
    pub fn users(&self) -> impl Iterator<Item = (&[u8], &UserStats)> {
        self.users.iter().map(|(n, s)| (&n[..], s))
    }

    /// Totals, with the events still unresolved (their arrival was not in the logs read)
    /// counted as unattributed.
    pub fn totals(&self) -> Totals {
        let mut t = self.totals.clone();
        for p in self.unresolved.values() {
            t.unattributed_deferrals += u64::from(p.deferrals);
            t.unattributed_bounces += u64::from(p.bounces);
        }
        t
    }

    /// Messages arrived and not yet completed.
    pub fn open_messages(&self) -> usize {
        self.open.len()
    }

    /// Entries of the table of events whose arrival is not in this part of the log.
    pub fn unresolved_len(&self) -> usize {
        self.unresolved.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(a: &mut Aggregate, text: &str) {
        for l in text.lines() {
            a.line(l.as_bytes());
        }
    }

    fn stats<'a>(a: &'a Aggregate, name: &str) -> &'a UserStats {
        a.users()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, s)| s)
            .expect("user present")
    }

    const ARRIVE: &str = "2026-12-03 10:00:00 1xZ6T6-00064g-31 <= a@b H=(vm) [127.0.0.1]:5 U=web1 P=esmtp S=100 T=\"s\" for x@y z@y\n\
                          2026-12-03 10:00:01 1xZ6T6-00064g-31 == x@y R=r T=t defer (-53): retry time not reached\n";
    const LATER: &str = "2026-12-03 11:00:00 1xZ6T6-00064g-31 ** x@y R=r T=t: gone\n\
                         2026-12-03 11:00:00 1xZ6T6-00064g-31 => z@y R=r T=t\n\
                         2026-12-03 11:00:00 1xZ6T6-00064g-31 Completed\n\
                         2026-12-03 11:00:01 1xZ6T6-00064g-31 ** late@y R=r T=t: after completion\n";

    #[test]
    fn join_within_and_across_parts() {
        let mut one = Aggregate::new(Window::default(), 100);
        feed(&mut one, &format!("{ARRIVE}{LATER}"));
        let s = stats(&one, "web1");
        assert_eq!(
            (s.mails, s.rcpts, s.bytes, s.deferrals, s.bounces),
            (1, 2, 100, 1, 1)
        );
        assert_eq!(
            one.totals().unattributed_bounces,
            1,
            "a bounce after Completed has no message"
        );

        let mut first = Aggregate::new(Window::default(), 100);
        feed(&mut first, ARRIVE);
        let mut second = Aggregate::new(Window::default(), 100);
        feed(&mut second, LATER);
        assert_eq!(first.open_messages(), 1);
        first.merge(second);
        let s = stats(&first, "web1");
        assert_eq!(
            (s.mails, s.rcpts, s.bytes, s.deferrals, s.bounces),
            (1, 2, 100, 1, 1)
        );
        assert_eq!(first.open_messages(), 0);
        assert_eq!(first.totals().unattributed_bounces, 1);
    }

    #[test]
    fn messages_of_nobody_are_tracked_and_dropped() {
        let mut a = Aggregate::new(Window::default(), 100);
        feed(
            &mut a,
            "2026-12-03 10:00:00 1xZ6T6-00064g-31 <= a@remote.example H=mx.remote.example [192.0.2.1]:25 P=esmtp S=1 for u@x\n\
             2026-12-03 10:00:00 1xZ6T6-00064g-31 == u@x R=r T=t defer (-1): x\n\
             2026-12-03 10:00:00 1xZ6T6-00064g-31 => u@x R=r T=t\n\
             2026-12-03 10:00:00 1xZ6T6-00064g-31 Completed\n\
             2026-12-03 10:00:00 1xZ6T7-00064g-31 <= <> R=1xZ6T6-00064g-31 U=Debian-exim P=local S=1 for u@x\n\
             2026-12-03 10:00:00 1xZ6T7-00064g-31 ** u@x R=r T=t: no\n\
             2026-12-03 10:00:00 1xZ6T7-00064g-31 Completed\n",
        );
        assert_eq!((a.open_messages(), a.unresolved_len()), (0, 0));
        let t = a.totals();
        assert_eq!(
            (
                t.without_ident,
                t.system_messages,
                t.unattributed_bounces,
                t.unattributed_deferrals
            ),
            (1, 1, 0, 0)
        );
        assert_eq!(a.users().count(), 0);
    }

    #[test]
    fn recipients_from_deliveries_without_for_list() {
        let mut a = Aggregate::new(Window::default(), 100);
        feed(
            &mut a,
            "2026-12-03 10:00:00 1xZ6T6-00064g-31 <= a@b H=[::1]:5 U=web1 P=esmtp S=1\n\
             2026-12-03 10:00:00 1xZ6T6-00064g-31 => x@y R=r T=t\n\
             2026-12-03 10:00:00 1xZ6T6-00064g-31 -> z@y R=r T=t\n\
             2026-12-03 10:00:00 1xZ6T6-00064g-31 ** q@y R=r T=t: no\n\
             2026-12-03 10:00:00 1xZ6T6-00064g-31 Completed\n",
        );
        assert_eq!(stats(&a, "web1").rcpts, 3);
    }

    #[test]
    fn window_and_bounded_table() {
        let w = Window {
            since: Some(20261203100000),
            until: Some(20261203110000),
        };
        let mut a = Aggregate::new(w, 4);
        for i in 0..10 {
            let l = format!("2026-12-03 09:00:00 1xZ6T6-0000{i:02}-31 <= a@b H=[::1]:5 U=old P=esmtp S=1 for x@y");
            a.line(l.as_bytes());
        }
        assert!(a.open_messages() <= 4);
        assert!(a.totals().evicted >= 6);
        assert!(stats(&a, "old").is_empty(), "outside the window");
        feed(
            &mut a,
            "2026-12-03 10:30:00 1xZ6T6-000009-31 ** x@y: bounced inside the window\n",
        );
        assert_eq!(stats(&a, "old").bounces, 1);
    }
}
