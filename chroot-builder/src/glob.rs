//! Minimal glob matching: `*` matches any run of characters (including `/`), `?` one character.

/// True if `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// True if the pattern has glob characters.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globbing() {
        assert!(matches("*.conf", "libc.conf"));
        assert!(!matches("*.conf", "libc.conf.bak"));
        assert!(matches(
            "/usr/lib/python3*/dist-packages*",
            "/usr/lib/python3.11/dist-packages/x"
        ));
        assert!(matches("*/__pycache__", "/usr/lib/python3.11/__pycache__"));
        assert!(matches("perl?", "perl5"));
        assert!(!matches("perl?", "perl"));
        assert!(matches("*", ""));
    }
}
