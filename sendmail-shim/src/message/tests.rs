//! Unit tests for message preparation, on bytes. Named `edge_NN_*` after the cases in
//! sendmail-compat.md §4.

use std::ffi::{OsStr, OsString};
use std::io;

use super::*;
use crate::args;
use crate::config::{self, FileConfig};

/// Thu, 03 Dec 2026 14:42:52 +0000.
const STAMP: Stamp = Stamp {
    unix_secs: 1_796_308_972,
    nanos: 7,
    pid: 4242,
    random: 0xfeed,
};

fn ident() -> Identity {
    Identity {
        uid: 1001,
        user: Some("alice".into()),
        domain: "host.example".into(),
        script: Some(b"/home/alice/www/wp-mail.php".to_vec()),
        cwd: Some(b"/home/alice/www".to_vec()),
    }
}

fn conf() -> Config {
    config::resolve(
        &FileConfig::default(),
        &Invocation::default(),
        "host.example",
    )
}

fn inv(argv: &[&str]) -> Invocation {
    let v: Vec<OsString> = argv.iter().map(OsString::from).collect();
    args::parse(OsStr::new("sendmail"), &v).expect("valid argv")
}

fn run(argv: &[&str], input: &[u8]) -> Result<Message> {
    prepare_with(&inv(argv), &ident(), &conf(), input, STAMP)
}

/// Prepares and checks the invariants every prepared message must hold.
fn ok(argv: &[&str], input: &[u8]) -> Message {
    let m = run(argv, input).unwrap_or_else(|e| panic!("{argv:?} {input:?}: {e}"));
    assert_wire_clean(&m.data);
    m
}

fn assert_wire_clean(data: &[u8]) {
    assert!(data.ends_with(b"\r\n"), "data ends in CRLF");
    assert!(!data.contains(&0), "no NUL");
    for (i, &b) in data.iter().enumerate() {
        if b == b'\r' {
            assert_eq!(data.get(i + 1), Some(&b'\n'), "lone CR at {i}");
        }
        if b == b'\n' {
            assert!(i > 0 && data[i - 1] == b'\r', "lone LF at {i}");
        }
    }
    for line in data.split(|&b| b == b'\n') {
        assert!(line.len() <= MAX_LINE + 1, "line too long");
    }
}

fn err(argv: &[&str], input: &[u8]) -> Error {
    match run(argv, input) {
        Err(e) => e,
        Ok(m) => panic!("{argv:?} {input:?} should fail, got {m:?}"),
    }
}

fn text(m: &Message) -> String {
    String::from_utf8_lossy(&m.data).into_owned()
}

/// The header part (up to the blank line) and the body.
fn parts(m: &Message) -> (String, String) {
    let t = text(m);
    let (h, b) = t.split_once("\r\n\r\n").expect("a blank line");
    (format!("{h}\r\n"), b.to_owned())
}

const ORIGIN: &str = "X-BaseOS-Origin: uid=1001 user=alice script=\"/home/alice/www/wp-mail.php\" \
                      cwd=\"/home/alice/www\"\r\n";
const ADDED: &str = "From: alice@host.example\r\nDate: Thu, 03 Dec 2026 14:42:52 +0000\r\n\
                     Message-ID: <1796308972.000000007.4242.000000000000feed@host.example>\r\n";

#[test]
fn php_mail_exact_output() {
    // What PHP 8 writes for mail("bob@x.example", "Hi", "line1\nline2", "From: site@x.example").
    let m = ok(
        &["-t", "-i"],
        b"To: bob@x.example\r\nSubject: Hi\r\nFrom: site@x.example\r\n\r\nline1\nline2\n",
    );
    assert_eq!(m.envelope.sender, "alice@host.example");
    assert_eq!(m.envelope.recipients, ["bob@x.example"]);
    assert_eq!(
        text(&m),
        format!(
            "{ORIGIN}To: bob@x.example\r\nSubject: Hi\r\nFrom: site@x.example\r\n\
             Date: Thu, 03 Dec 2026 14:42:52 +0000\r\n\
             Message-ID: <1796308972.000000007.4242.000000000000feed@host.example>\r\n\
             \r\nline1\r\nline2\r\n"
        )
    );
    assert!(!m.eight_bit && !m.smtputf8);
}

#[test]
fn edge_01_bcc_last_no_final_lf() {
    let m = ok(
        &["-t"],
        b"To: a@x.example\nSubject: s\nBcc: hidden@y.example",
    );
    assert_eq!(m.envelope.recipients, ["a@x.example", "hidden@y.example"]);
    assert!(
        !text(&m).to_ascii_lowercase().contains("bcc"),
        "{}",
        text(&m)
    );
    assert!(!text(&m).contains("hidden"));
}

#[test]
fn edge_02_folded_bcc_removed_whole() {
    let m = ok(
        &["-t"],
        b"To: a@x.example\nBcc: one@y.example,\n two@y.example,\n\tthree@y.example\nSubject: s\n\nbody\n",
    );
    assert_eq!(
        m.envelope.recipients,
        [
            "a@x.example",
            "one@y.example",
            "two@y.example",
            "three@y.example"
        ]
    );
    let (h, b) = parts(&m);
    assert!(
        !h.contains("one@") && !h.contains("two@") && !h.contains("three@"),
        "{h}"
    );
    assert!(h.contains("To: a@x.example\r\nSubject: s\r\n"), "{h}");
    assert_eq!(b, "body\r\n");
}

#[test]
fn edge_03_bcc_removed_without_t() {
    let m = ok(
        &["a@x.example"],
        b"To: a@x.example\nBcc: secret@y.example\nSubject: s\n\nb\n",
    );
    assert_eq!(
        m.envelope.recipients,
        ["a@x.example"],
        "without -t Bcc is not a recipient"
    );
    assert!(!text(&m).contains("secret"));
    let m = ok(
        &["a@x.example"],
        b"Resent-Bcc: secret@y.example\nSubject: s\n\nb\n",
    );
    assert!(!text(&m).contains("secret"));
}

#[test]
fn edge_04_bcc_never_leaks_in_any_spelling() {
    let m = ok(
        &["-t"],
        b"BCC: a@y.example\nbcc : b@y.example\nBcC:\n c@y.example\nTo: t@x.example\n\
          Resent-Bcc: d@y.example\n\nBcc: this body line stays\n",
    );
    let (h, b) = parts(&m);
    for leak in ["a@y", "b@y", "c@y", "d@y"] {
        assert!(!h.contains(leak), "{leak} leaked: {h}");
    }
    assert_eq!(b, "Bcc: this body line stays\r\n");
    // Resent-Bcc exists, so the Resent block decides the recipients (edge 28).
    assert_eq!(m.envelope.recipients, ["d@y.example"]);
}

#[test]
fn edge_05_crlf_input() {
    let m = ok(
        &["-t"],
        b"To: a@x.example\r\nSubject: s\r\n\r\nl1\r\nl2\r\n",
    );
    let (_, b) = parts(&m);
    assert_eq!(b, "l1\r\nl2\r\n");
    assert!(!text(&m).contains("\r\r"));
}

#[test]
fn edge_06_crlf_blank_line_ends_header() {
    let m = ok(
        &["-t"],
        b"To: a@x.example\r\nSubject: s\r\n\r\nTo: body@x.example\r\nmore\r\n",
    );
    assert_eq!(
        m.envelope.recipients,
        ["a@x.example"],
        "body To: is not harvested"
    );
    assert_eq!(parts(&m).1, "To: body@x.example\r\nmore\r\n");
}

#[test]
fn edge_07_cr_and_space_in_recipient_trimmed() {
    let m = ok(&[" a@x.example\r"], b"Subject: s\n\nb\n");
    assert_eq!(m.envelope.recipients, ["a@x.example"]);
    let m = ok(&["-t"], b"To: a@x.example \r\r\n\nb\n");
    assert_eq!(m.envelope.recipients, ["a@x.example"]);
}

#[test]
fn edge_08_crlf_headers_lf_body() {
    // PHP 8: headers joined with CRLF, body with the script's own LF.
    let m = ok(
        &["-t", "-i"],
        b"To: a@x.example\r\nSubject: s\r\nX-Mailer: PHP/8.2\r\n\r\nHello\nWorld\n\nBye\n",
    );
    let (h, b) = parts(&m);
    assert!(h.contains("X-Mailer: PHP/8.2\r\n"));
    assert_eq!(b, "Hello\r\nWorld\r\n\r\nBye\r\n");
}

#[test]
fn edge_09_bare_cr_ends_a_line() {
    let m = ok(&["-t"], b"To: a@x.example\rSubject: s\r\rone\rtwo");
    assert_eq!(m.envelope.recipients, ["a@x.example"]);
    let (h, b) = parts(&m);
    assert!(h.contains("Subject: s\r\n"));
    assert_eq!(b, "one\r\ntwo\r\n");
}

#[test]
fn edge_10_lf_dot_crlf_is_normalised_before_stuffing() {
    // CVE-2023-51764: "\n.\r\n" must become a normal "." line, which the SMTP layer stuffs.
    let m = ok(
        &["-t", "-i"],
        b"To: a@x.example\n\nhi\n.\r\nMAIL FROM:<x@evil>\r\n.\nend\n",
    );
    assert_eq!(parts(&m).1, "hi\r\n.\r\nMAIL FROM:<x@evil>\r\n.\r\nend\r\n");
    let stuffed = crate::smtp::dot_stuff(&m.data);
    let inner = &stuffed[..stuffed.len() - 3];
    assert!(
        !inner.windows(5).any(|w| w == b"\r\n.\r\n"),
        "no end-of-data inside the mail"
    );
}

#[test]
fn edge_11_lone_dot_line() {
    // With -i the dot is data.
    let m = ok(&["-t", "-i"], b"To: a@x.example\n\nbefore\n.\nafter\n");
    assert_eq!(parts(&m).1, "before\r\n.\r\nafter\r\n");
    let m = ok(&["-t", "-oi"], b"To: a@x.example\n\nbefore\n.\nafter\n");
    assert_eq!(parts(&m).1, "before\r\n.\r\nafter\r\n");
    // Without it, as sendmail: the dot ends the input; what follows is not read.
    let m = ok(&["-t"], b"To: a@x.example\n\nbefore\n.\nafter\n");
    assert_eq!(parts(&m).1, "before\r\n");
    let m = ok(&["-t"], b"To: a@x.example\n\nbefore\r\n.\r\n");
    assert_eq!(parts(&m).1, "before\r\n");
    // ".." and ". " are not the terminator.
    let m = ok(&["-t"], b"To: a@x.example\n\n..\n. \n");
    assert_eq!(parts(&m).1, "..\r\n. \r\n");
}

#[test]
fn dot_ends_input_and_reading_stops_there() {
    /// A reader that fails if read past the first chunk.
    struct ThenFail(Option<&'static [u8]>);
    impl Read for ThenFail {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.take() {
                Some(d) => {
                    buf[..d.len()].copy_from_slice(d);
                    Ok(d.len())
                }
                None => Err(io::Error::other("read past the dot")),
            }
        }
    }
    let m = prepare_with(
        &inv(&["-t"]),
        &ident(),
        &conf(),
        ThenFail(Some(b"To: a@x.example\n\nbody\n.\n")),
        STAMP,
    )
    .expect("stops at the dot");
    assert_eq!(parts(&m).1, "body\r\n");
}

#[test]
fn edge_12_leading_dot_kept_for_the_smtp_layer() {
    let m = ok(&["-t", "-i"], b"To: a@x.example\n\n.hidden\n..two\n");
    assert_eq!(parts(&m).1, ".hidden\r\n..two\r\n");
    assert!(crate::smtp::dot_stuff(&m.data).ends_with(b"\r\n..hidden\r\n...two\r\n.\r\n"));
}

#[test]
fn edge_13_no_final_newline() {
    let m = ok(&["-t"], b"To: a@x.example\n\nlast line");
    assert_eq!(parts(&m).1, "last line\r\n");
}

#[test]
fn edge_14_no_blank_line_after_headers() {
    let m = ok(
        &["-t"],
        b"To: a@x.example\nSubject: s\nThis is the body, no blank line.\nTo: b@x.example\n",
    );
    assert_eq!(m.envelope.recipients, ["a@x.example"]);
    let (h, b) = parts(&m);
    assert!(h.ends_with(ADDED), "{h}");
    assert_eq!(b, "This is the body, no blank line.\r\nTo: b@x.example\r\n");
}

#[test]
fn edge_14_body_only_mail() {
    let m = ok(&["a@x.example"], b"just a body\n");
    assert_eq!(text(&m), format!("{ORIGIN}{ADDED}\r\njust a body\r\n"));
    // A continuation line with no header before it is body too.
    let m = ok(&["a@x.example"], b" indented\nSubject: x\n");
    assert_eq!(parts(&m).1, " indented\r\nSubject: x\r\n");
}

#[test]
fn edge_15_headers_only() {
    let m = ok(&["-t"], b"To: a@x.example\nSubject: only headers");
    assert_eq!(
        text(&m),
        format!("{ORIGIN}To: a@x.example\r\nSubject: only headers\r\n{ADDED}\r\n")
    );
}

#[test]
fn edge_16_folded_to_and_cc() {
    let m = ok(
        &["-t"],
        b"To: a@x.example,\n  b@x.example\nCc: Some\n One <c@x.example>,\n\td@x.example\n\nb\n",
    );
    assert_eq!(
        m.envelope.recipients,
        ["a@x.example", "b@x.example", "c@x.example", "d@x.example"]
    );
    // The fold is kept on the wire, as CRLF.
    assert!(text(&m).contains("To: a@x.example,\r\n  b@x.example\r\n"));
}

#[test]
fn edge_17_to_18_19_display_names() {
    let m = ok(
        &["-t"],
        b"To: Name <a@x.example>, \"Doe, John\" <j@x.example>\nCc: \"\\\"a@b.example\\\"\" <ab@x.example>\n\nb\n",
    );
    assert_eq!(
        m.envelope.recipients,
        ["a@x.example", "j@x.example", "ab@x.example"]
    );
}

#[test]
fn edge_20_comments() {
    let m = ok(
        &["-t"],
        b"To: a@x.example (Al), <to10(c)@host.example(c)>\n\nb\n",
    );
    assert_eq!(m.envelope.recipients, ["a@x.example", "to10@host.example"]);
}

#[test]
fn edge_21_undisclosed_recipients() {
    let m = ok(
        &["-t", "real@x.example"],
        b"To: undisclosed-recipients:;\nSubject: s\n\nb\n",
    );
    assert_eq!(m.envelope.recipients, ["real@x.example"]);
    let e = err(&["-t"], b"To: undisclosed-recipients:;\n\nb\n");
    assert_eq!(e.exit_code(), 64);
    assert!(e.to_string().starts_with("no valid recipients"), "{e}");
}

#[test]
fn edge_22_encoded_word_display_name() {
    let m = ok(
        &["-t"],
        b"To: =?UTF-8?B?VGVzdCDDnHNlcg==?= <t@x.example>\n\nb\n",
    );
    assert_eq!(m.envelope.recipients, ["t@x.example"]);
    assert!(text(&m).contains("To: =?UTF-8?B?VGVzdCDDnHNlcg==?= <t@x.example>\r\n"));
}

#[test]
fn edge_23_eight_bit_content() {
    let m = ok(&["-t"], "To: a@x.example\n\nGrüße\n".as_bytes());
    assert!(m.eight_bit);
    assert!(!m.smtputf8, "8-bit body alone needs 8BITMIME, not SMTPUTF8");
    let m = ok(&["-t"], b"To: a@x.example\n\nplain\n");
    assert!(!m.eight_bit);
}

#[test]
fn utf8_subject() {
    let m = ok(
        &["-t"],
        "To: a@x.example\nSubject: Grüße aus Köln ☀\n\nb\n".as_bytes(),
    );
    assert!(m.eight_bit && !m.smtputf8);
    assert!(
        text(&m).contains("Subject: Grüße aus Köln ☀\r\n"),
        "passed through untouched"
    );
}

#[test]
fn edge_24_utf8_address_needs_smtputf8() {
    let m = ok(
        &["-t"],
        "To: Jörg <jörg@bücher.example>\nSubject: Grüße\n\nb\n".as_bytes(),
    );
    assert_eq!(m.envelope.recipients, ["jörg@bücher.example"]);
    assert!(m.smtputf8 && m.eight_bit);
    let m = ok(&["-f", "ä@x.example", "a@x.example"], b"b\n");
    assert!(m.smtputf8);
}

#[test]
fn edge_25_duplicates_removed() {
    let m = ok(
        &["-t", "a@X.example"],
        b"To: a@x.example, A@x.example\nCc: <a@x.EXAMPLE>\nBcc: a@x.example\n\nb\n",
    );
    // Domain compared without case, local part exactly (A@ and a@ may differ).
    assert_eq!(m.envelope.recipients, ["a@X.example", "A@x.example"]);
}

#[test]
fn edge_26_trailing_comma() {
    let m = ok(&["-t"], b"To: a@x.example,\nCc: ,b@x.example,,\n\nb\n");
    assert_eq!(m.envelope.recipients, ["a@x.example", "b@x.example"]);
    let m = ok(&["a@x.example,"], b"b\n");
    assert_eq!(m.envelope.recipients, ["a@x.example"]);
}

#[test]
fn edge_27_header_name_with_space_before_colon() {
    // RFC 5322 4.5.3 (obs-optional) allows WSP before the colon: accepted as To.
    let m = ok(&["-t"], b"TO : a@x.example\nSubject : s\n\nb\n");
    assert_eq!(m.envelope.recipients, ["a@x.example"]);
    assert!(text(&m).contains("TO : a@x.example\r\n"));
    assert!(text(&m).contains("Subject : s\r\n"));
}

#[test]
fn edge_28_first_resent_block() {
    let m = ok(
        &["-t"],
        b"Resent-From: fwd@x.example\nResent-To: new1@x.example\nResent-Cc: new2@x.example\n\
          Resent-Bcc: new3@x.example\n\
          Resent-From: older@x.example\nResent-To: old-resent@x.example\n\
          From: orig@x.example\nTo: original@x.example\nBcc: orig-bcc@x.example\n\nbody\n",
    );
    assert_eq!(
        m.envelope.recipients,
        ["new1@x.example", "new2@x.example", "new3@x.example"]
    );
    let (h, _) = parts(&m);
    assert!(!h.contains("new3") && !h.contains("orig-bcc"), "{h}");
    assert!(
        h.contains("Resent-To: new1@x.example\r\n") && h.contains("To: original@x.example\r\n")
    );
    // A Resent block without recipient fields names nobody: refused, not sent to the old To.
    let e = err(
        &["-t"],
        b"Resent-From: a@x.example\nTo: original@x.example\n\nb\n",
    );
    assert_eq!(e.exit_code(), 64);
}

#[test]
fn edge_29_mbox_from_line_dropped() {
    let m = ok(&["-t"], b"From someone@x.example Thu Dec  3 14:00:00 2026\nTo: a@x.example\nSubject: s\n\nFrom me\n");
    let (h, b) = parts(&m);
    assert!(h.starts_with(ORIGIN) && !h.contains("From someone"), "{h}");
    assert!(h.contains("To: a@x.example\r\nSubject: s\r\n"));
    // Only the first line; a body "From " line stays (mbox quoting is not ours).
    assert_eq!(b, "From me\r\n");
}

#[test]
fn edge_30_line_over_998_refused() {
    let mut mail = b"To: a@x.example\n\n".to_vec();
    mail.extend(std::iter::repeat_n(b'x', 998));
    mail.extend(b"\nok\n");
    ok(&["-t"], &mail);
    let mut mail = b"To: a@x.example\n\nfine\n".to_vec();
    mail.extend(std::iter::repeat_n(b'x', 999));
    mail.push(b'\n');
    let e = err(&["-t"], &mail);
    assert_eq!(e.exit_code(), 65);
    assert!(e.to_string().contains("line 4 is longer than 998"), "{e}");
    // The limit counts the line without its CRLF, whatever the input's line end was.
    let mut mail = b"To: a@x.example\r\n\r\n".to_vec();
    mail.extend(std::iter::repeat_n(b'x', 998));
    mail.extend(b"\r\n");
    ok(&["-t"], &mail);
}

#[test]
fn edge_31_long_address_refused() {
    let long = format!("To: {}@x.example\n\nb\n", "a".repeat(300));
    let e = err(&["-t"], long.as_bytes());
    assert_eq!(e.exit_code(), 65);
    assert!(
        e.to_string().contains("To: header") && e.to_string().contains("longer"),
        "{e}"
    );
}

#[test]
fn edge_32_nul_refused() {
    let e = err(&["-t"], b"To: a@x.example\n\nbin\0ary\n");
    assert_eq!(e.exit_code(), 65);
    assert!(e.to_string().contains("line 3 contains a NUL"), "{e}");
}

#[test]
fn edge_33_over_the_cap_refused() {
    let mut cfg = conf();
    cfg.settings.max_size = 1000;
    let mail = format!("To: a@x.example\n\n{}", "0123456789\n".repeat(100));
    let e = prepare_with(&inv(&["-t"]), &ident(), &cfg, mail.as_bytes(), STAMP).unwrap_err();
    assert_eq!(e.exit_code(), 65);
    assert!(e.to_string().contains("1000-octet limit"), "{e}");
    // Just under the cap as read, but over once our headers are added: still refused.
    let mail = format!("To: a@x.example\n\n{}", "0123456789\n".repeat(70));
    let e = prepare_with(&inv(&["-t"]), &ident(), &cfg, mail.as_bytes(), STAMP).unwrap_err();
    assert_eq!(e.exit_code(), 65);
}

/// Yields an endless-looking mail of `total` bytes without holding it in memory.
struct BigMail {
    header: &'static [u8],
    left: u64,
    read_total: u64,
}

impl Read for BigMail {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.header.is_empty() {
            let n = self.header.len().min(buf.len());
            buf[..n].copy_from_slice(&self.header[..n]);
            self.header = &self.header[n..];
            self.read_total += n as u64;
            return Ok(n);
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = if i % 77 == 76 { b'\n' } else { b'a' };
        }
        self.left -= n as u64;
        self.read_total += n as u64;
        Ok(n)
    }
}

#[test]
fn sixty_mib_mail_refused_under_the_default_cap_without_reading_it_all() {
    let mut mail = BigMail {
        header: b"To: a@x.example\n\n",
        left: 60 << 20,
        read_total: 0,
    };
    let cfg = conf();
    assert_eq!(cfg.settings.max_size, 50 << 20);
    let e = prepare_with(&inv(&["-t"]), &ident(), &cfg, &mut mail, STAMP).unwrap_err();
    assert_eq!(e.exit_code(), 65);
    assert!(e.to_string().contains("52428800-octet limit"), "{e}");
    assert!(
        mail.read_total < (51 << 20),
        "stopped reading at the cap: {}",
        mail.read_total
    );
}

#[test]
fn edge_37_f_without_at_gets_the_configured_domain() {
    let m = ok(&["-f", "webmaster", "a@x.example"], b"b\n");
    assert_eq!(m.envelope.sender, "webmaster@host.example");
    assert!(text(&m).contains("From: webmaster@host.example\r\n"));
}

#[test]
fn edge_35_null_sender_keeps_a_from_header() {
    let m = ok(&["-f<>", "a@x.example"], b"b\n");
    assert_eq!(m.envelope.sender, "");
    assert!(text(&m).contains("From: alice@host.example\r\n"));
}

#[test]
fn edge_39_t_plus_argv_is_a_deduplicated_union() {
    let m = ok(
        &["-t", "extra@y.example", "a@x.example"],
        b"To: a@x.example, b@x.example\n\nb\n",
    );
    assert_eq!(
        m.envelope.recipients,
        ["extra@y.example", "a@x.example", "b@x.example"]
    );
}

#[test]
fn edge_40_no_recipients_fails_before_reading() {
    struct MustNotRead;
    impl Read for MustNotRead {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("stdin must not be read"))
        }
    }
    let e = prepare_with(&inv(&[]), &ident(), &conf(), MustNotRead, STAMP).unwrap_err();
    assert_eq!(e.exit_code(), 64, "{e}");
    assert!(e.to_string().starts_with("no valid recipients"));
    // -t with a header that names nobody.
    let e = err(&["-t"], b"Subject: s\n\nb\n");
    assert_eq!(e.exit_code(), 64);
}

#[test]
fn invalid_argument_recipients() {
    let e = err(&["John Smith"], b"b\n");
    assert_eq!(e.exit_code(), 64);
    assert!(
        e.to_string().contains("invalid recipient \"John Smith\""),
        "{e}"
    );
    // All invalid, one invalid: the same, nothing half-sent.
    let e = err(&["good@x.example", "bad@"], b"b\n");
    assert_eq!(e.exit_code(), 64);
    assert!(e.to_string().contains("bad@"), "{e}");
    // Empty-ish arguments name nobody.
    let e = err(&[",", " "], b"b\n");
    assert!(e.to_string().starts_with("no valid recipients"), "{e}");
}

#[test]
fn malformed_address_header_names_the_header() {
    let e = err(
        &["-t"],
        b"To: ok@x.example\nCc: John Doe j@x.example\n\nb\n",
    );
    assert_eq!(e.exit_code(), 65);
    assert!(e.to_string().contains("in the Cc: header"), "{e}");
    let e = err(&["-t"], b"To: \"Doe, John <j@x.example>\n\nb\n");
    assert!(
        e.to_string()
            .contains("in the To: header (unclosed quoted string)"),
        "{e}"
    );
    // Without -t address headers are not ours to judge.
    ok(&["a@x.example"], b"Cc: John Doe j@x.example\n\nb\n");
    // An unquoted "Doe, John" is two addresses, the first unqualified (as sendmail reads it).
    let m = ok(&["-t"], b"To: Doe, John <j@x.example>\n\nb\n");
    assert_eq!(m.envelope.recipients, ["Doe@host.example", "j@x.example"]);
}

#[test]
fn argv_recipients_may_be_lists_and_unqualified() {
    let m = ok(&["Jo <jo@x.example>, root"], b"b\n");
    assert_eq!(m.envelope.recipients, ["jo@x.example", "root@host.example"]);
}

#[test]
fn edge_50_date_message_id_from_added() {
    let m = ok(&["a@x.example"], b"Subject: s\n\nb\n");
    assert_eq!(text(&m), format!("{ORIGIN}Subject: s\r\n{ADDED}\r\nb\r\n"));
    // Present ones (any case) are kept, not doubled.
    let m = ok(
        &["a@x.example"],
        b"from: x@y.example\nDATE: whenever\nmessage-id: <1@y>\n\nb\n",
    );
    let (h, _) = parts(&m);
    assert_eq!(
        h,
        format!("{ORIGIN}from: x@y.example\r\nDATE: whenever\r\nmessage-id: <1@y>\r\n")
    );
}

#[test]
fn from_with_full_name() {
    let m = ok(&["-F", "Jo Doe", "a@x.example"], b"b\n");
    assert!(text(&m).contains("From: Jo Doe <alice@host.example>\r\n"));
    let m = ok(
        &["-F", "Doe, Jo \"JD\"", "-f", "jd@y.example", "a@x.example"],
        b"b\n",
    );
    assert!(
        text(&m).contains("From: \"Doe, Jo \\\"JD\\\"\" <jd@y.example>\r\n"),
        "{}",
        text(&m)
    );
    // msmtp's golden value.
    assert_eq!(display_name("Test Üser"), "=?UTF-8?B?VGVzdCDDnHNlcg==?=");
    // -F is ignored when the mail has a From.
    let m = ok(&["-F", "Jo", "a@x.example"], b"From: site@x.example\n\nb\n");
    assert!(!text(&m).contains("Jo"));
}

#[test]
fn long_utf8_full_name_is_split_into_short_encoded_words() {
    let name = "Ünïcödé ".repeat(20);
    let v = display_name(name.trim());
    for word in v.split("\r\n ") {
        assert!(
            word.len() <= 75 && word.starts_with("=?UTF-8?B?") && word.ends_with("?="),
            "{word}"
        );
    }
    let m = ok(&["-F", name.trim(), "a@x.example"], b"b\n");
    assert!(m.data.len() < 2000);
}

#[test]
fn base64_vectors() {
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(i.as_bytes()), o);
    }
}

#[test]
fn dates() {
    assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    assert_eq!(
        rfc5322_date(4_102_444_799),
        "Thu, 31 Dec 2099 23:59:59 +0000"
    );
    assert_eq!(
        rfc5322_date(STAMP.unix_secs),
        "Thu, 03 Dec 2026 14:42:52 +0000"
    );
}

#[test]
fn message_ids_are_unique() {
    let a = Stamp::now();
    let b = Stamp::now();
    assert_ne!(message_id(&a, "h"), message_id(&b, "h"));
    assert!(message_id(&a, "h").ends_with("@h>"));
}

#[test]
fn origin_header_first_and_callers_removed() {
    let m = ok(
        &["-t"],
        b"X-BaseOS-Origin: uid=0 user=root\nTo: a@x.example\nx-baseos-origin: forged\n  folded\n\nb\n",
    );
    let t = text(&m);
    assert!(t.starts_with(ORIGIN));
    assert_eq!(t.matches("uid=").count(), 1, "{t}");
    assert!(!t.contains("forged") && !t.contains("folded"));
    // origin_header = false: none added, the caller's still removed.
    let mut cfg = conf();
    cfg.origin_header = false;
    let m = prepare_with(
        &inv(&["-t"]),
        &ident(),
        &cfg,
        &b"X-BaseOS-Origin: uid=0\nTo: a@x.example\n\nb\n"[..],
        STAMP,
    )
    .expect("prepared");
    assert!(!text(&m).contains("X-BaseOS-Origin"));
}

#[test]
fn edge_49_sender_without_passwd_entry() {
    let mut id = ident();
    id.user = None;
    let m = prepare_with(&inv(&["a@x.example"]), &id, &conf(), &b"b\n"[..], STAMP).expect("ok");
    assert_eq!(m.envelope.sender, "uid1001@host.example");
    assert!(text(&m).starts_with("X-BaseOS-Origin: uid=1001 script="));
}

#[test]
fn empty_stdin_refused() {
    let e = err(&["-t"], b"");
    assert_eq!(e.exit_code(), 65);
    assert!(e.to_string().contains("empty"), "{e}");
    let e = err(&["a@x.example"], b".\n");
    assert_eq!(e.exit_code(), 65);
}

#[test]
fn stdin_read_error_is_74() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }
    let e = prepare_with(&inv(&["a@x.example"]), &ident(), &conf(), Broken, STAMP).unwrap_err();
    assert_eq!(e.exit_code(), 74);
    assert!(
        e.to_string().contains("reading the mail from stdin failed"),
        "{e}"
    );
}

#[test]
fn interrupted_reads_are_retried() {
    struct Flaky(u8, &'static [u8]);
    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0 += 1;
            if self.0 % 2 == 1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.1.len().min(buf.len()).min(3);
            buf[..n].copy_from_slice(&self.1[..n]);
            self.1 = &self.1[n..];
            Ok(n)
        }
    }
    let m = prepare_with(
        &inv(&["-t"]),
        &ident(),
        &conf(),
        Flaky(0, b"To: a@x.example\r\n\r\nb\r\n"),
        STAMP,
    )
    .expect("ok");
    assert_eq!(m.envelope.recipients, ["a@x.example"]);
    assert_eq!(parts(&m).1, "b\r\n");
}

#[test]
fn crlf_split_across_reads_is_one_line_end() {
    /// Returns one byte per read, so every CR LF pair is split.
    struct OneByte(&'static [u8]);
    impl Read for OneByte {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                None => Ok(0),
            }
        }
    }
    let m = prepare_with(
        &inv(&["-t"]),
        &ident(),
        &conf(),
        OneByte(b"To: a@x.example\r\n\r\nl1\r\n\r\nl3\r\r\nl5\r"),
        STAMP,
    )
    .expect("ok");
    assert_eq!(parts(&m).1, "l1\r\n\r\nl3\r\n\r\nl5\r\n");
}

#[test]
fn binary_garbage() {
    // Random bytes: refused cleanly (NUL / long line) or, without NUL, sent as 8-bit lines.
    let mut rng = XorShift(0x1234_5678);
    let garbage: Vec<u8> = (0..20_000).map(|_| rng.byte()).collect();
    let e = err(&["a@x.example"], &garbage);
    assert_eq!(e.exit_code(), 65, "{e}");
    let no_nul: Vec<u8> = garbage
        .iter()
        .map(|&b| if b == 0 { 1 } else { b })
        .collect();
    let m = ok(&["a@x.example"], &no_nul);
    assert!(m.eight_bit);
}

#[test]
fn msmtp_header_handling_golden() {
    // marlam/msmtp tests/test-header-handling.sh: the same recipients, with the unqualified
    // to4/to12 qualified by our domain, and the From added only when missing.
    let mail = b"From: Some Name <from@example.com>\n\
X-Comment: Recipient address madness inspired by the RFC 2822 appendix\n\
To: to1@example.com,\n\t=?utf-8?B?VGVzdCDDnHNlcg==?= <to2@example.com>, Some\n\tOne <to3@example.com>,\n\
Cc: to4, \"A; \\\"Quoted\\\" Name\" <to5@example.com>\n\
To: A Group:Person 1 <to6@example.com>,to7@example.com,SomeOne <to8@example.com>;\n\
Cc: Undisclosed recipients:;\n\
To: \"A Person: Personal Account\" <to9@example.com>\n\
To: Some(wonderful \\) chap) <to10(his account)@localhost(this host)>\n\
Cc:A Group(Some people)\n     :Some Person <to11@(their's host.)example.com>,\n              to12, \n\t        Person <to13@localhost> (a friend); (the end of the group)\n\
Bcc:(Empty list)(start)Undisclosed recipients  :(nobody(that I know))  ;\n\
Bcc: bcc@example.com\n\
Subject: Test\n\
\n\
This is a test.\n";
    let m = ok(&["-t"], mail);
    assert_eq!(
        m.envelope.recipients,
        [
            "to1@example.com",
            "to2@example.com",
            "to3@example.com",
            "to4@host.example",
            "to5@example.com",
            "to6@example.com",
            "to7@example.com",
            "to8@example.com",
            "to9@example.com",
            "to10@localhost",
            "to11@example.com",
            "to12@host.example",
            "to13@localhost",
            "bcc@example.com",
        ]
    );
    let (h, b) = parts(&m);
    assert!(!h.contains("Bcc") && !h.contains("bcc@"), "{h}");
    assert!(h.contains("From: Some Name <from@example.com>\r\n") && !h.contains("From: alice"));
    assert_eq!(b, "This is a test.\r\n");
}

#[test]
fn relayed_message_gets_the_same_treatment() {
    let env = Envelope {
        sender: "app@x.example".into(),
        recipients: vec!["a@x.example".into(), "A@X.EXAMPLE".into()],
    };
    let m = prepare_relayed_with(
        env,
        b"Subject: s\r\nBcc: h@y.example\r\n\r\n.\r\nbody\r\n",
        &ident(),
        &conf(),
        STAMP,
    )
    .expect("ok");
    assert_eq!(m.envelope.sender, "app@x.example");
    assert_eq!(m.envelope.recipients, ["a@x.example", "A@X.EXAMPLE"]);
    let t = text(&m);
    assert!(t.starts_with(ORIGIN) && !t.contains("h@y"));
    assert!(t.contains("From: app@x.example\r\n"));
    assert!(
        t.ends_with("\r\n\r\n.\r\nbody\r\n"),
        "a dot line is data in -bs: {t}"
    );
    let env = Envelope {
        sender: String::new(),
        recipients: vec![],
    };
    assert_eq!(
        prepare_relayed_with(env, b"b\r\n", &ident(), &conf(), STAMP)
            .unwrap_err()
            .exit_code(),
        64
    );
}

/// Tiny deterministic PRNG for the fuzz loops (no dependency).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }
    /// A byte biased towards what header and address parsers find interesting.
    fn mail_byte(&mut self) -> u8 {
        const INTERESTING: &[u8] = b"\r\n\t :,;<>@.()\"\\[]=?-abcTtoO:BbcC\x80\xc3\xa9\0~";
        if self.next().is_multiple_of(4) {
            self.byte()
        } else {
            INTERESTING[(self.next() % INTERESTING.len() as u64) as usize]
        }
    }
}

#[test]
fn fuzz_no_panic_and_clean_output() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let prefixes: [&[u8]; 4] = [b"", b"To: ", b"To: a@x.example\nCc: ", b"Resent-To: "];
    let mut accepted = 0;
    for round in 0..20_000 {
        let len = (rng.next() % 120) as usize;
        let mut mail = prefixes[round % prefixes.len()].to_vec();
        mail.extend((0..len).map(|_| rng.mail_byte()));
        let argv: &[&str] = if round % 3 == 0 {
            &["-t", "b@y.example"]
        } else {
            &["-t", "-i"]
        };
        if let Ok(m) = run(argv, &mail) {
            assert_wire_clean(&m.data);
            assert!(!m.envelope.recipients.is_empty());
            for r in &m.envelope.recipients {
                assert!(!r.bytes().any(|b| b < 0x20 || b == 0x7f), "{r:?}");
            }
            accepted += 1;
        }
        let _ = address::parse_address_list(&mail);
    }
    assert!(
        accepted > 100,
        "the fuzz loop reaches the success path too ({accepted})"
    );
}

/// Reads `data` in chunks of the given sizes (cycled), to move chunk boundaries around.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    i: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.sizes[self.i % self.sizes.len()].max(1);
        self.i += 1;
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The normalisation rules written the obvious way, on the whole input at once.
fn reference_normalise(input: &[u8], dot_ends: bool) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'\r' => {
                lines.push(&input[start..i]);
                i += if input.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                start = i;
            }
            b'\n' => {
                lines.push(&input[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < input.len() {
        lines.push(&input[start..]);
    }
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if dot_ends && *line == b"." {
            break;
        }
        if n == 0 && line.starts_with(b"From ") {
            continue;
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn normaliser_matches_the_reference_whatever_the_chunking() {
    let mut rng = XorShift(0x0dd_b1a5_e5ba_d5e1);
    const ALPHABET: &[u8] = b"\r\n.aFrom \xc3";
    for round in 0..5_000 {
        let len = (rng.next() % 60) as usize;
        let mut input: Vec<u8> = (0..len)
            .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize])
            .collect();
        if round % 7 == 0 {
            input.splice(0..0, b"From x\n".iter().copied());
        }
        let sizes = [1 + (rng.next() % 4) as usize, 1 + (rng.next() % 9) as usize];
        for dot_ends in [false, true] {
            let expected = reference_normalise(&input, dot_ends);
            let got = read_mail(
                Chunked {
                    data: &input,
                    sizes: &sizes,
                    i: 0,
                },
                dot_ends,
                1 << 20,
            );
            match got {
                Ok(out) => assert_eq!(out, expected, "{input:?} dot_ends={dot_ends}"),
                Err(e) => {
                    assert!(expected.is_empty(), "{input:?}: {e}");
                    assert_eq!(e.exit_code(), 65);
                }
            }
        }
    }
}

#[test]
fn split_header_never_panics_on_raw_bytes() {
    let mut rng = XorShift(0x5eed);
    for _ in 0..20_000 {
        let len = (rng.next() % 80) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.mail_byte()).collect();
        let (fields, body) = split_header(&data);
        assert!(body <= data.len());
        for f in &fields {
            assert!(f.start <= f.name_end && f.name_end <= f.colon && f.colon < f.end);
            assert!(f.end <= data.len());
        }
    }
}
