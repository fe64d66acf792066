//! The README's main job: BaseOS mail end to end on this machine, on loopback.
//!
//! Builds a BaseOS tree from this host and loads it into a scratch tmpfs, renders the default
//! policy (limit: 3 mails per hour per user) for a private Exim, starts it and oidentd, and has
//! two throwaway site users send mail with PHP from inside the chroot until the first hits its
//! limit. Prints the delivered headers, the limit message and the per-user report, then removes
//! everything it made. The same code path as the end-to-end tests (`baseos_tests::scenario`).
//! Run it as root through `scripts/demo.sh`, which builds it first.

use baseos_tests::scenario::{Scenario, ScenarioOptions};

fn main() {
    println!("== BaseOS mail demo: building a BaseOS tree, loading it into tmpfs, starting Exim and oidentd ...");
    let s = Scenario::start(ScenarioOptions::new("demo"));
    let (a, b) = (&s.users[0], &s.users[1]);
    println!(
        "   tree: {} (tmpfs), Exim on 127.0.0.1:{}, site users {} (uid {}) and {} (uid {})",
        s.live.display(),
        s.exim.port(),
        a.name,
        a.uid,
        b.name,
        b.uid
    );
    println!("   policy: at most 3 mails per hour per user (ident on loopback)\n");
    for n in 1..=4 {
        let (ok, out) = s.php_mail(
            a,
            "inbox@test.example",
            &format!("{} mail {n}", a.name),
            "Hello from PHP inside the chroot.\n",
        );
        println!(
            "== {}: php mail() #{n} -> {}",
            a.name,
            if ok { "true" } else { "false" }
        );
        if !ok {
            for line in String::from_utf8_lossy(&out.stderr)
                .lines()
                .chain(String::from_utf8_lossy(&out.stdout).lines())
            {
                if !line.trim().is_empty() && !line.contains("MAIL-FALSE") {
                    println!("   {line}");
                }
            }
        }
    }
    let (ok, _) = s.php_mail(
        b,
        "inbox@test.example",
        &format!("{} mail 1", b.name),
        "Hello from the other site.\n",
    );
    println!(
        "== {}: php mail() #1 -> {}  (another user is not affected)\n",
        b.name,
        if ok { "true" } else { "false" }
    );

    let mails = s.delivered("inbox", 4);
    if let Some(first) = mails.first() {
        println!("== headers of the first delivered mail:");
        let text = String::from_utf8_lossy(first);
        for line in text.split("\n\n").next().unwrap_or_default().lines() {
            println!("   {line}");
        }
    }
    println!("\n== exim-policy report (from the private Exim's mainlog):");
    print!("{}", s.report(&["--format", "table"]));
    println!("\n== cleaning up (Exim stopped, tree unloaded, users removed)");
}
