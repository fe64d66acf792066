//! `exim-policy render`: writes the Exim configuration for ident-based per-user limits.
//!
//! # Log lines written by the rendered configuration (the contract with `report`)
//!
//! Every line below is a normal Exim mainlog line: `YYYY-MM-DD HH:MM:SS`, then optionally
//! ` [pid]` (with `+pid` in `log_selector`), then the text. `<id>` is the Exim message id
//! (`$message_exim_id`, e.g. `1xZ6T6-00064g-31`), the same id as the message's `<=` line,
//! which is written just AFTER the `BASEOS-ORIGIN` line of the same message.
//!
//! Accepted origin (DATA ACL, `logwrite`, only for a loopback message that carried a valid
//! `X-BaseOS-Origin` whose user/uid agree with the ident):
//!
//! ```text
//! 2026-12-03 13:03:24 [23354] 1xZ6T6-00064g-31 BASEOS-ORIGIN U=alice uid=1001 user=alice script="/home/alice/www/wp-mail.php" cwd="/home/alice/www"
//! ```
//!
//! Fields, always all of them, always in this order, separated by one space:
//! - `U=<ident>`: `$sender_ident`, a plain login (`^[a-z_][a-z0-9_.-]{0,31}$`) or a uid (`^[0-9]{1,10}$`).
//! - `uid=<digits>`: the header's uid (checked against the ident).
//! - `user=<login>` or `user=-` when the header had no `user=`.
//! - `script="<text>"`, `cwd="<text>"`: the header's values, `""` when absent. Inside the quotes
//!   `\"` is a quote, `\\` a backslash, and `\NNN` (backslash + exactly 3 octal digits) is a
//!   byte Exim escaped on output (bytes >= 0x80). No other escapes occur; the values never
//!   contain control characters (such a header is refused as malformed).
//!
//! Forged or malformed origin header, policy `forged = "reject"` (Exim's own reject line,
//! mainlog and rejectlog):
//!
//! ```text
//! 2026-12-03 13:05:00 [24001] 1xZ6T9-0006KV-0G H=(vm) [127.0.0.1]:49900 U=alice P=esmtp rejected after DATA: BASEOS-FORGED U=alice claimed="uid=1002 user=bob"
//! ```
//!
//! policy `forged = "strip"` (the header is removed, the mail accepted, and `logwrite` says):
//!
//! ```text
//! 2026-12-03 13:05:00 [24001] 1xZ6T9-0006KV-0G BASEOS-FORGED U=alice action=stripped claimed="uid=1002 user=bob"
//! ```
//!
//! Other refusals (Exim's `rejected ...` lines, `log_message` text after the colon):
//! `BASEOS-NOIDENT` (connect, no ident on a loopback connection), `BASEOS-BADIDENT U=... ident="..."`
//! (connect, ident not a plain login/uid), `BASEOS-BLOCKED U=<ident>` (MAIL),
//! `BASEOS-SENDER U=<ident> sender=<addr>` (MAIL, sender domain not allowed; with mode `log`
//! this is a `logwrite` line `<id-less> BASEOS-SENDER ... action=logged`),
//! `BASEOS-LIMIT U=<ident> what=messages|recipients rate=<r> limit=<m> period=<p>` (MAIL for
//! messages, predata for recipients).
