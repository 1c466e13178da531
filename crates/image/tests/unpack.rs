//! Layer unpacking: malicious tars, whiteouts under a real overlay mount, metadata.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_image::{ErrorKind, ImageStore, ImportOptions};
use common::*;

struct Fixture {
    dir: tempfile::TempDir,
    store: ImageStore,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        let store = ImageStore::open(dir.path().join("image")).unwrap();
        Fixture { dir, store }
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    fn import(&self, tar: &[u8]) -> Result<String, berth_image::ImageError> {
        self.store.import(&mut &tar[..], &ImportOptions::default())
    }

    /// The import must fail as an escape, and nothing may appear outside the layer root.
    fn assert_rejected(&self, tar: &[u8]) {
        let e = self.import(tar).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(
            e.to_string().ends_with(": path escapes the layer root"),
            "{e}"
        );
        let stray: Vec<_> = walk(self.dir.path())
            .into_iter()
            .filter(|p| p.file_name().is_some_and(|n| n == "pwned"))
            .collect();
        assert!(stray.is_empty(), "written: {stray:?}");
        assert_eq!(std::fs::read_dir(self.outside()).unwrap().count(), 0);
        assert!(self.store.list().is_empty());
        let snapshots = self.dir.path().join("image/snapshots");
        assert_eq!(
            std::fs::read_dir(snapshots).unwrap().count(),
            0,
            "no snapshot left"
        );
    }

    /// The lowerdir of a fresh container snapshot of `image`, top-most first.
    fn lowers(&self, key: &str, image: &str) -> Vec<PathBuf> {
        let mounts = self.store.prepare_snapshot(key, image).unwrap();
        mounts[0].options[0]
            .trim_start_matches("lowerdir=")
            .split(':')
            .map(PathBuf::from)
            .collect()
    }
}

#[test]
fn layer_with_dotdot_path_is_rejected() {
    let f = Fixture::new();
    f.assert_rejected(&Layer::new().file("../pwned", b"x").finish());
    f.assert_rejected(&Layer::new().dir("a/").file("a/../../pwned", b"x").finish());
    let deep = format!("{}/../outside/pwned", "../".repeat(12));
    f.assert_rejected(&Layer::new().file(&deep, b"x").finish());
}

#[test]
fn layer_with_absolute_path_is_rejected() {
    let f = Fixture::new();
    let target = f.outside().join("pwned");
    f.assert_rejected(&Layer::new().file(target.to_str().unwrap(), b"x").finish());
}

#[test]
fn symlink_climbing_out_of_the_root_is_rejected() {
    let f = Fixture::new();
    let climb = format!("{}tmp", "../".repeat(20));
    f.assert_rejected(&Layer::new().dir("a/").symlink("a/evil", &climb).finish());
    f.assert_rejected(&Layer::new().symlink("evil", "..").finish());
}

#[test]
fn write_through_a_symlink_planted_earlier_is_rejected() {
    let f = Fixture::new();
    let outside = f.outside();
    // Absolute link targets are legal in images (resolved in the container), but the unpacker
    // must never follow one.
    f.assert_rejected(
        &Layer::new()
            .symlink("evil", outside.to_str().unwrap())
            .file("evil/pwned", b"x")
            .finish(),
    );
    f.assert_rejected(
        &Layer::new()
            .symlink("evil", outside.to_str().unwrap())
            .dir("evil/sub/")
            .finish(),
    );
    // Even a link that stays inside is not written through.
    f.assert_rejected(
        &Layer::new()
            .dir("bin/")
            .symlink("lnk", "bin")
            .file("lnk/pwned", b"x")
            .finish(),
    );
}

#[test]
fn hardlink_leaving_the_root_is_rejected() {
    let f = Fixture::new();
    let passwd_links = std::fs::metadata("/etc/passwd").unwrap().nlink();
    f.assert_rejected(
        &Layer::new()
            .hardlink("pwned", "../../../../../../etc/passwd")
            .finish(),
    );
    f.assert_rejected(&Layer::new().hardlink("pwned", "/etc/passwd").finish());
    f.assert_rejected(
        &Layer::new()
            .symlink("etc", "/etc")
            .hardlink("pwned", "etc/passwd")
            .finish(),
    );
    assert_eq!(
        std::fs::metadata("/etc/passwd").unwrap().nlink(),
        passwd_links
    );
}

#[test]
fn symlink_in_a_lower_layer_is_not_followed() {
    require_root();
    let f = Fixture::new();
    let outside = f.outside();
    let lower = Layer::new()
        .symlink("etc", outside.to_str().unwrap())
        .finish();
    let upper = Layer::new().dir("etc/").file("etc/pwned", b"x").finish();
    let img = TestImage {
        config: config_for(&[&lower, &upper], &["sh"], &[]),
        blobs: vec![lower, upper],
        tags: vec!["layered:1".into()],
    };
    f.store.load(&mut &docker_save_archive(&[img])[..]).unwrap();
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    let lowers = f.lowers("c", "layered:1");
    assert!(lowers[0].join("etc").symlink_metadata().unwrap().is_dir());
    assert!(lowers[1]
        .join("etc")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn hard_links_inside_the_layer_work() {
    let f = Fixture::new();
    let id = f
        .import(
            &Layer::new()
                .dir("d/")
                .file("d/a", b"data")
                .hardlink("b", "d/a")
                .hardlink("./c", "./d/a")
                .finish(),
        )
        .unwrap();
    let root = &f.lowers("c", &id)[0];
    let a = std::fs::metadata(root.join("d/a")).unwrap();
    assert_eq!(std::fs::metadata(root.join("b")).unwrap().ino(), a.ino());
    assert_eq!(std::fs::metadata(root.join("c")).unwrap().ino(), a.ino());
    assert_eq!(a.nlink(), 3);
}

#[test]
fn ownership_permissions_mtimes_xattrs_and_devices_are_kept() {
    require_root();
    let f = Fixture::new();
    let tar = Layer::new()
        .dir("bin/")
        .xattr_next("user.berth", b"yes")
        .file_with("bin/su", b"#!", 0o4755, 1234, 5678, 1_234_567_890)
        .symlink("bin/link", "/bin/su")
        .dir("dev/")
        .char_device("dev/null", 1, 3)
        .fifo("dev/fifo")
        .xattr_next("trusted.overlay.redirect", b"/etc")
        .file("sneaky", b"x")
        .finish();
    let id = f.import(&tar).unwrap();
    let root = &f.lowers("c", &id)[0];
    let su = std::fs::symlink_metadata(root.join("bin/su")).unwrap();
    assert_eq!((su.uid(), su.gid()), (1234, 5678));
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime(), 1_234_567_890);
    assert_eq!(
        xattr::get(root.join("bin/su"), "user.berth")
            .unwrap()
            .as_deref(),
        Some(&b"yes"[..])
    );
    assert_eq!(
        std::fs::read_link(root.join("bin/link")).unwrap(),
        Path::new("/bin/su")
    );
    assert_eq!(
        std::fs::symlink_metadata(root.join("bin")).unwrap().mtime(),
        1_600_000_000
    );
    let null = std::fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert!(std::fs::symlink_metadata(root.join("dev/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    // Overlay's own xattrs are never taken from a layer.
    assert_eq!(
        xattr::get(root.join("sneaky"), "trusted.overlay.redirect").unwrap(),
        None
    );
}

struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn whiteouts_hide_lower_files_under_overlay() {
    require_root();
    let f = Fixture::new();
    let lower = Layer::new()
        .dir("a/")
        .file("a/keep", b"k")
        .file("a/gone", b"g")
        .dir("d/")
        .file("d/old", b"o")
        .finish();
    let upper = Layer::new()
        .dir("a/")
        .file("a/.wh.gone", b"")
        .dir("d/")
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"n")
        .finish();
    let img = TestImage {
        config: config_for(&[&lower, &upper], &["sh"], &[]),
        blobs: vec![gzip(&lower), zstd(&upper)],
        tags: vec!["wh:1".into()],
    };
    f.store.load(&mut &docker_save_archive(&[img])[..]).unwrap();
    let mounts = f.store.prepare_snapshot("ctr", "wh:1").unwrap();

    // On disk: overlay's whiteout forms.
    let top = PathBuf::from(
        mounts[0].options[0]
            .trim_start_matches("lowerdir=")
            .split(':')
            .next()
            .unwrap(),
    );
    let wh = std::fs::symlink_metadata(top.join("a/gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(!top.join("a/.wh.gone").exists());
    assert_eq!(
        xattr::get(top.join("d"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );

    // Mounted: the deleted file is gone, the opaque dir hides the lower one's content.
    let target = f.dir.path().join("rootfs");
    std::fs::create_dir(&target).unwrap();
    let status = Command::new("mount")
        .args([
            "-t",
            &mounts[0].fstype,
            &mounts[0].source,
            "-o",
            &mounts[0].options.join(","),
        ])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success(), "mount overlay");
    let _guard = Mounted(target.clone());
    assert!(target.join("a/keep").exists());
    assert!(!target.join("a/gone").exists());
    assert!(!target.join("d/old").exists());
    assert_eq!(std::fs::read(target.join("d/new")).unwrap(), b"n");
    // Writes land in the container's upper dir.
    std::fs::write(target.join("written"), b"12345").unwrap();
    drop(_guard);
    assert_eq!(f.store.snapshot_usage("ctr"), 5);
}

#[test]
fn busybox_image_runs_from_the_mounted_snapshot() {
    require_root();
    let f = Fixture::new();
    let id = f.import(&busybox_rootfs()).unwrap();
    let mounts = f.store.prepare_snapshot("bb", &id).unwrap();
    let target = f.dir.path().join("rootfs");
    std::fs::create_dir(&target).unwrap();
    let status = Command::new("mount")
        .args([
            "-t",
            "overlay",
            "overlay",
            "-o",
            &mounts[0].options.join(","),
        ])
        .arg(&target)
        .status()
        .unwrap();
    assert!(status.success());
    let _guard = Mounted(target.clone());
    let out = Command::new("chroot")
        .arg(&target)
        .args(["/bin/sh", "-c", "echo hi from busybox"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi from busybox\n");
}

#[test]
fn whiteout_then_recreated_directory_and_early_opaque_marker() {
    require_root();
    let f = Fixture::new();
    let id = f
        .import(
            &Layer::new()
                .file(".wh.gone", b"")
                .file("gone/again", b"a")
                .file("o/.wh..wh..opq", b"")
                .dir("o/")
                .finish(),
        )
        .unwrap();
    let root = &f.lowers("c", &id)[0];
    assert_eq!(std::fs::read(root.join("gone/again")).unwrap(), b"a");
    assert_eq!(
        xattr::get(root.join("o"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
}

fn set_times(path: &Path, secs: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        None,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

#[test]
fn directory_times_are_never_set_through_a_symlink_planted_later() {
    require_root();
    let f = Fixture::new();
    let outside = f.outside();
    let victim = outside.join("victim");
    std::fs::create_dir(&victim).unwrap();
    set_times(&victim, 1_000_000_000);
    set_times(&outside, 1_000_000_000);
    let target = outside.to_str().unwrap();
    // The directory entries come first; a later entry of the same layer replaces a parent
    // (at the top and deeper down) with a link to a host directory holding a `victim`.
    let id = f
        .import(
            &Layer::new()
                .dir("a/")
                .dir("a/victim/")
                .symlink("a", target)
                .dir("b/")
                .dir("b/c/")
                .dir("b/c/victim/")
                .symlink("b/c", target)
                .dir("kept/")
                .dir("kept/sub/")
                .finish(),
        )
        .unwrap();
    for dir in [&victim, &outside] {
        let m = std::fs::symlink_metadata(dir).unwrap();
        assert_eq!(
            (m.mtime(), m.atime()),
            (1_000_000_000, 1_000_000_000),
            "{}",
            dir.display()
        );
    }
    let root = &f.lowers("c", &id)[0];
    for link in ["a", "b/c"] {
        assert_eq!(std::fs::read_link(root.join(link)).unwrap(), outside);
    }
    // Directories that stayed directories still get their times.
    for dir in ["b", "kept", "kept/sub"] {
        let m = std::fs::symlink_metadata(root.join(dir)).unwrap();
        assert_eq!(m.mtime(), 1_600_000_000, "{dir}");
    }
}

#[test]
fn whiteout_of_the_parent_directory_is_rejected() {
    let f = Fixture::new();
    f.assert_rejected(&Layer::new().file("keep", b"k").file(".wh...", b"").finish());
    f.assert_rejected(
        &Layer::new()
            .dir("a/")
            .file("a/keep", b"k")
            .file("a/.wh...", b"")
            .finish(),
    );
}
