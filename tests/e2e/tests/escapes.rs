//! Escape attempts from inside a container: each must fail, and where the attack needs a
//! privilege the default container lacks, a `--privileged` control shows the check can fail.

use std::path::Path;

use berth_e2e::{busybox_tar_with, text, Daemon};

fn run(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    let o = d.docker(&full);
    (
        o.status.code().unwrap_or(-1),
        text(&o.stdout),
        text(&o.stderr),
    )
}

/// CVE-2022-0492 class: with the default capabilities, no cgroup `release_agent` can be
/// written and no new cgroup hierarchy can be mounted.
#[test]
fn release_agent_and_cgroup_mounts_are_out_of_reach() {
    let d = Daemon::start();
    d.busybox();
    // berth's runtime shows a container only its own cgroup in each hierarchy (and mounts no
    // hierarchy it has no cgroup in), so no hierarchy root and no release_agent is in sight;
    // any that were would have to refuse the write.
    let find = "n=0; for f in $(find /sys/fs/cgroup /mnt/cg -maxdepth 2 -name release_agent \
                2>/dev/null); do n=$((n+1)); if echo /pwn > $f 2>/dev/null; then echo WROTE $f; \
                fi; done; echo seen=$n";
    let (_, out, err) = run(&d, &["busybox", "sh", "-c", find]);
    assert!(!out.contains("WROTE"), "{out} {err}");
    let (code, _, _) = run(
        &d,
        &[
            "busybox",
            "sh",
            "-c",
            "mkdir -p /mnt/cg && mount -t cgroup -o memory cgroup /mnt/cg",
        ],
    );
    assert_ne!(code, 0, "a default container mounted a cgroup hierarchy");
    // Control: with --privileged the same mount works and the same search finds the new
    // hierarchy's release_agent, so both checks above can fail. It only looks: the
    // hierarchy is the host's, and a write would change the host's release_agent.
    let look = "n=0; for f in $(find /mnt/cg -maxdepth 1 -name release_agent); do \
                [ -w $f ] && n=$((n+1)); done; echo seen=$n";
    let script = format!("mkdir -p /mnt/cg && mount -t cgroup -o memory cgroup /mnt/cg && {look}");
    let (code, out, err) = run(&d, &["--privileged", "busybox", "sh", "-c", &script]);
    assert_eq!(code, 0, "control: {err}");
    assert!(
        !out.contains("seen=0"),
        "control found no release_agent: {out}"
    );
}

/// `/proc/sysrq-trigger` and `/proc/sys` are read-only; masked paths cannot be unmasked.
#[test]
fn proc_stays_read_only_and_masked() {
    let d = Daemon::start();
    d.busybox();
    let (code, _, _) = run(&d, &["busybox", "sh", "-c", "echo h > /proc/sysrq-trigger"]);
    assert_ne!(code, 0);
    let (code, _, _) = run(
        &d,
        &["busybox", "sh", "-c", "echo 1 > /proc/sys/vm/drop_caches"],
    );
    assert_ne!(code, 0);
    let (code, out, _) = run(
        &d,
        &[
            "busybox",
            "sh",
            "-c",
            "umount /proc/keys && cat /proc/keys | head -c 1",
        ],
    );
    assert_ne!(code, 0, "unmasked /proc/keys: {out}");
}

/// CVE-2021-30465 class: a bind mount whose destination goes through a symlink in the
/// image is resolved inside the rootfs, never on the host.
#[test]
fn symlinked_mount_targets_stay_inside_the_root() {
    let d = Daemon::start();
    // An image whose /escape is an absolute symlink to /tmp and /a/up a relative one to ../tmp
    // (the image store refuses relative links that climb out of the layer)
    let evil = busybox_tar_with(d.dir.path(), "links.tar", &[], |out| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        out.append_data(&mut h, "a", std::io::empty()).unwrap();
        for (name, target) in [("escape", "/tmp"), ("a/up", "../tmp")] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            out.append_link(&mut h, name, target).unwrap();
        }
    });
    let o = d.docker(&["import", evil.to_str().unwrap(), "links:1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let src = d.dir.path().join("payload");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("marker"), "payload").unwrap();
    // Through an absolute link, a relative link, and `..` in the destination itself.
    for via in ["escape", "a/up", "../../../../tmp"] {
        let name = format!("berth-e2e-target-{}-{}", std::process::id(), via.len());
        let host_target = Path::new("/tmp").join(&name);
        let bind = format!("{}:/{via}/{name}", src.display());
        let (code, out, err) = run(
            &d,
            &[
                "-v",
                &bind,
                "links:1",
                "cat",
                &format!("/tmp/{name}/marker"),
            ],
        );
        // Resolved inside the root: the container sees the payload at its own /tmp.
        assert_eq!((code, out.as_str()), (0, "payload"), "{via}: {err}");
        assert!(
            !host_target.exists(),
            "{via}: the mount target was created on the host"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&name), "{via}: mounted on the host");
    }
}

/// CVE-2019-5736 class, start path: nothing a container can reach through /proc lets it
/// write to berth's binaries (the shim is outside its pid namespace; its own init is
/// busybox, busy). The binaries are unchanged afterwards.
#[test]
fn proc_exe_cannot_overwrite_berths_binaries() {
    use std::io::Read;
    let d = Daemon::start();
    d.busybox();
    let digest = |p: &Path| {
        let mut bytes = Vec::new();
        std::fs::File::open(p)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    };
    let shim = berth_e2e::bin_dir().join("berth-shim");
    let berthd = berth_e2e::bin_dir().join("berthd");
    let before = (digest(&shim), digest(&berthd));
    let (_, out, err) = run(&d, &["busybox", "sh", "-c",
        "for p in /proc/[0-9]*; do if (printf x >> $p/exe) 2>/dev/null; then echo WROTE $p; fi; done; \
         ls /proc | grep -c '^[0-9]'"]);
    assert!(!out.contains("WROTE"), "{out} {err}");
    let visible: u32 = out.trim().parse().unwrap_or(999);
    assert!(visible <= 3, "the container sees host processes: {visible}");
    assert!(
        before == (digest(&shim), digest(&berthd)),
        "a binary changed"
    );
}
