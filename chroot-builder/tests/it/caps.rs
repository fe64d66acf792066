//! File capabilities (security.capability) survive master → live copies.

use crate::common::scratch;
use chroot_builder::{sys, tree};

/// A v2 capability set: cap_net_raw permitted and effective (what Debian gives ping).
const NET_RAW: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
    0x00, 0x20, 0x00, 0x00, // permitted (low): 1 << 13 = CAP_NET_RAW
    0x00, 0x00, 0x00, 0x00, // inheritable (low)
    0x00, 0x00, 0x00, 0x00, // permitted (high)
    0x00, 0x00, 0x00, 0x00, // inheritable (high)
];

#[test]
fn capabilities_are_copied_with_the_file() {
    baseos_tests::require_root();
    let d = scratch("caps");
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    std::fs::create_dir_all(a.join("bin")).expect("mkdir");
    std::fs::create_dir(&b).expect("mkdir");
    std::fs::copy("/usr/bin/true", a.join("bin/pingish")).expect("copy");
    let f = std::fs::File::open(a.join("bin/pingish")).expect("open");
    sys::set_caps(std::os::fd::AsFd::as_fd(&f), &NET_RAW).expect("setxattr (needs root)");
    drop(f);
    let plan = tree::plan_from_tree(&a).expect("plan");
    let opts = tree::Options {
        src_root: Some(sys::open_root(&a).expect("root")),
        remove_extra: true,
        ..Default::default()
    };
    tree::apply(&plan, &b, &opts).expect("apply");
    assert_eq!(
        sys::get_caps_path(&b.join("bin/pingish")).as_deref(),
        Some(&NET_RAW[..])
    );
    // Capabilities dropped in the copy are put back by the next apply (as sync would).
    rustix::fs::removexattr(b.join("bin/pingish"), sys::CAP_XATTR).expect("removexattr");
    assert!(sys::get_caps_path(&b.join("bin/pingish")).is_none());
    let ch = tree::apply(&plan, &b, &opts).expect("apply");
    assert_eq!(ch.changed.len(), 1, "{ch:?}");
    assert_eq!(
        sys::get_caps_path(&b.join("bin/pingish")).as_deref(),
        Some(&NET_RAW[..])
    );
}
