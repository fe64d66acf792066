//! Per-user counts from a stream of lines, the message-id join, and the merge of partial
//! aggregates (one per file or file chunk) in chronological order.
//!
//! Memory: one entry per distinct user (and per distinct script of a user), one per OPEN
//! message (arrived, not yet `Completed`), and one per message id seen without its arrival in
//! this part of the log (resolved at merge time). Both message tables are bounded by `cap`: an
//! open message whose `Completed` never comes (frozen forever, or its line lost) is dropped in
//! generations, oldest first, and counted as `evicted`.

use super::parse::{parse_line, Arrival, Event, MsgId, Origin, Reason};
use super::stamp::{stamp_value, Stamp};
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
            self.write_u64(word(c));
        }
        let r = chunks.remainder();
        if !r.is_empty() {
            self.write_u64(word(r) ^ ((r.len() as u64) << 59));
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

/// Up to 8 bytes as a little-endian word (no `memcpy` call for the short tail).
#[inline]
fn word(x: &[u8]) -> u64 {
    if let Ok(a) = <[u8; 8]>::try_from(x) {
        return u64::from_le_bytes(a);
    }
    let mut w = 0u64;
    for (i, &c) in x.iter().enumerate().take(8) {
        w |= u64::from(c) << (8 * i);
    }
    w
}

/// Byte equality without a call to `memcmp` (names here are short).
#[inline]
fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut ca, mut cb) = (a.chunks(8), b.chunks(8));
    loop {
        match (ca.next(), cb.next()) {
            (Some(x), Some(y)) if word(x) == word(y) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[inline]
fn name_hash(name: &[u8]) -> u64 {
    let mut h = FastHasher(name.len() as u64);
    h.write(name);
    h.finish()
}

/// Distinct names (users, scripts) numbered in order of appearance. Looked up by a 64-bit
/// hash, then compared word by word; a name whose hash another name already has goes to a
/// plain map, so a collision costs time, never correctness.
#[derive(Clone, Debug, Default)]
pub struct Names {
    by_hash: FastMap<u64, u32>,
    collided: HashMap<Box<[u8]>, u32>,
    names: Vec<Box<[u8]>>,
}

impl Names {
    /// The number of `name`, and whether it is new.
    #[inline]
    pub fn intern(&mut self, name: &[u8]) -> (u32, bool) {
        let h = name_hash(name);
        match self.by_hash.get(&h) {
            Some(&i) if bytes_eq(&self.names[i as usize], name) => (i, false),
            Some(_) => {
                if let Some(&i) = self.collided.get(name) {
                    return (i, false);
                }
                let i = self.names.len() as u32;
                self.names.push(name.into());
                self.collided.insert(name.into(), i);
                (i, true)
            }
            None => {
                let i = self.names.len() as u32;
                self.names.push(name.into());
                self.by_hash.insert(h, i);
                (i, true)
            }
        }
    }

    /// The name numbered `i`.
    pub fn name(&self, i: usize) -> &[u8] {
        &self.names[i]
    }

    /// How many names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Mails per script of one user.
#[derive(Clone, Debug, Default)]
pub struct Scripts {
    names: Names,
    counts: Vec<u64>,
}

impl Scripts {
    #[inline]
    fn add(&mut self, script: &[u8], n: u64) {
        let (i, new) = self.names.intern(script);
        if new {
            self.counts.push(0);
        }
        self.counts[i as usize] += n;
    }

    /// Each script and its count.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, n)| (self.names.name(i), *n))
    }

    /// Whether no script was counted.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

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
    pub scripts: Scripts,
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
        for (k, v) in o.scripts.iter() {
            self.scripts.add(k, v);
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
    index: Names,
    users: Vec<(Box<[u8]>, UserStats)>,
    last_user: u32,
    open: JoinTable,
    unresolved: FastMap<MsgId, Pending>,
    /// Counts that belong to no user.
    pub totals: Totals,
    /// Stamp of the first timestamped line (0 = none).
    pub first_line: Stamp,
    /// Stamp of the last line: see [`Aggregate::last_stamp`].
    last_line: Stamp,
    /// The timestamp text of the last timestamped line, parsed only when asked for.
    last_raw: [u8; 19],
    /// The first unparseable lines.
    pub samples: Vec<Sample>,
}

impl Aggregate {
    /// An empty aggregate counting inside `window`, with at most `cap` open messages.
    pub fn new(window: Window, cap: usize) -> Aggregate {
        Aggregate {
            window,
            cap: cap.max(2),
            index: Names::default(),
            users: Vec::new(),
            last_user: 0,
            open: JoinTable::default(),
            unresolved: FastMap::default(),
            totals: Totals::default(),
            first_line: 0,
            last_line: 0,
            last_raw: [0; 19],
            samples: Vec::new(),
        }
    }

    #[inline]
    fn user(&mut self, name: &[u8]) -> u32 {
        // The origin line and the arrival of a message name the same user, one after the other.
        if let Some((n, _)) = self.users.get(self.last_user as usize) {
            if bytes_eq(n, name) {
                return self.last_user;
            }
        }
        let (i, new) = self.index.intern(name);
        if new {
            self.users.push((name.into(), UserStats::default()));
        }
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
        let (stamped, event) = parse_line(line);
        if !stamped {
            if matches!(event, Event::Continuation) {
                self.totals.continuations += 1;
                return true;
            }
            self.totals.unparseable += 1;
            return false;
        }
        if self.first_line == 0 {
            self.first_line = stamp_value(line).unwrap_or(0);
        }
        if let Some(raw) = line.first_chunk::<19>() {
            self.last_raw = *raw;
        }
        let needs_stamp = match event {
            Event::Other => return true,
            // Without a window the time of these lines does not matter.
            Event::Delivery(_) | Event::Defer(_) | Event::Bounce(_) | Event::Completed(_) => {
                self.window.since.is_some() || self.window.until.is_some()
            }
            _ => true,
        };
        let (stamp, inside) = if needs_stamp {
            let Some(stamp) = stamp_value(line) else {
                self.totals.unparseable += 1;
                return false;
            };
            (stamp, self.window.contains(stamp))
        } else {
            (0, true)
        };
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
                    self.users[i].1.scripts.add(script, 1);
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
        let later_last = later.last_stamp();
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
        self.last_line = self.last_stamp().max(later_last);
        if later.last_raw[0] != 0 {
            self.last_raw = later.last_raw;
        }
        for s in later.samples {
            if self.samples.len() < MAX_SAMPLES {
                self.samples.push(s);
            }
        }
    }

    /// Stamp of the last timestamped line read (0 = none).
    pub fn last_stamp(&self) -> Stamp {
        self.last_line.max(stamp_value(&self.last_raw).unwrap_or(0))
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
    fn names_survive_hash_collisions() {
        let mut n = Names::default();
        assert_eq!(n.intern(b"alice"), (0, true));
        assert_eq!(n.intern(b"bob-with-a-long-name"), (1, true));
        assert_eq!(n.intern(b"alice"), (0, false));
        // Force a collision: another name under alice's hash.
        let h = name_hash(b"alice");
        n.by_hash.insert(name_hash(b"carol"), 0);
        assert_eq!(n.intern(b"carol"), (2, true), "same hash, different name");
        assert_eq!(n.intern(b"carol"), (2, false));
        assert_eq!(n.by_hash.get(&h), Some(&0));
        assert!(bytes_eq(b"0123456789abcdefX", b"0123456789abcdefX"));
        assert!(!bytes_eq(b"0123456789abcdefX", b"0123456789abcdefY"));
        assert!(!bytes_eq(b"abc", b"abcd"));
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
