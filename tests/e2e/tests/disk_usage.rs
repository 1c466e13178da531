//! `system df` end to end: the daemon's bytes against `du` of the directories they stand
//! for, and the tables of the real docker CLI and berth's over them.
//!
//! Docker's sizes are its `directory.Size`: every entry but a directory by its own size (a
//! symlink by its target's length), a hard-linked inode once. `du -sbc` (apparent sizes,
//! hard links once) counts the directories' own sizes too, so the check below takes those
//! out: bytes = `du -sbc DIRS` - the sum of `find DIRS -type d`'s sizes.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_e2e::api::curl_json;
use berth_e2e::{text, wait_for, Daemon};
use serde_json::Value;

/// What Docker counts in `dirs`: apparent bytes of everything but directories, each inode
/// once (`du` keeps the first of a hard link's names).
fn du_files(dirs: &[PathBuf]) -> i64 {
    let du = Command::new("du").arg("-sbc").args(dirs).output().unwrap();
    let total: i64 = text(&du.stdout)
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du: {}", text(&du.stderr)));
    let find = Command::new("find")
        .args(dirs)
        .args(["-type", "d", "-printf", "%s\n"])
        .output()
        .unwrap();
    let dirs_own: i64 = text(&find.stdout)
        .lines()
        .map(|l| l.parse::<i64>().unwrap())
        .sum();
    total - dirs_own
}

/// The `fs` directories of the snapshots of `kind` (`layer`, `container`), by name (a
/// layer's chain id, a container's id).
fn snapshots(root: &Path, kind: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("image/snapshots")).unwrap() {
        let dir = e.unwrap().path();
        let Ok(meta) = std::fs::read(dir.join("meta.json")) else {
            continue;
        };
        let meta: Value = serde_json::from_slice(&meta).unwrap();
        if meta["kind"] == kind {
            out.push((meta["name"].as_str().unwrap().to_string(), dir.join("fs")));
        }
    }
    out
}

/// go-units `HumanSize`: decimal units, 4 significant digits (`7.001kB`).
fn human(n: i64) -> String {
    let units = ["B", "kB", "MB", "GB"];
    let (mut v, mut i) = (n as f64, 0);
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let whole_digits = if v < 1.0 { 1 } else { v.log10() as usize + 1 };
    let mut s = format!("{v:.*}", 4usize.saturating_sub(whole_digits));
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

/// docker's RECLAIMABLE cell.
fn reclaimable(part: i64, total: i64) -> String {
    format!("{} ({}%)", human(part), part * 100 / total)
}

/// `args` through both CLIs: the same output (tried again a few times when a clock column,
/// CREATED or STATUS, turned over between the two).
fn same_in_both(d: &Daemon, args: &[&str]) -> String {
    let mut last = (String::new(), String::new());
    for _ in 0..3 {
        let docker = d.ok(args);
        let berth = d.berth_ok(args);
        if docker == berth {
            return docker;
        }
        last = (docker, berth);
    }
    panic!("{args:?}:\ndocker:\n{}\nberth:\n{}", last.0, last.1);
}

fn by_name<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v[key].to_string().contains(name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

#[test]
fn system_df_bytes_are_du_of_the_layers_rw_layers_and_volumes() {
    let d = Daemon::start();
    d.busybox();
    // A second image on busybox: they share its layer.
    d.ok(&[
        "run",
        "--name",
        "base",
        "busybox",
        "sh",
        "-c",
        "head -c 12345 /dev/zero > /extra",
    ]);
    d.ok(&["commit", "base", "extra:1"]);
    d.ok(&["rm", "base"]);
    // Exited: 100000 bytes under two names and a symlink to them (4 bytes: "/big").
    d.ok(&[
        "run",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /big && ln /big /big2 && ln -s /big /sym",
    ]);
    // Running, on extra:1, with the volume `data`: 30000 bytes of its own, and 7000 under
    // two names plus a symlink ("f") in the volume.
    d.ok(&["volume", "create", "data"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "runner",
        "-v",
        "data:/data",
        "extra:1",
        "sh",
        "-c",
        "head -c 30000 /dev/zero > /w && head -c 7000 /dev/zero > /data/f && ln /data/f /data/g \
         && ln -s f /data/s && touch /ready && exec sleep 1000",
    ]);
    wait_for("runner's writes", || {
        d.docker(&["exec", "runner", "test", "-e", "/ready"])
            .status
            .success()
    });
    // Unused, filled from the host: 4321 bytes under two names, a symlink ("../a").
    d.ok(&["volume", "create", "idle"]);
    let idle = d.root().join("volumes/idle/_data");
    std::fs::write(idle.join("a"), vec![7u8; 4321]).unwrap();
    std::fs::create_dir(idle.join("sub")).unwrap();
    std::fs::hard_link(idle.join("a"), idle.join("sub/b")).unwrap();
    std::os::unix::fs::symlink("../a", idle.join("sub/c")).unwrap();

    let (status, du) = curl_json(&d, "GET", "/v1.44/system/df", None);
    assert_eq!(status, 200, "{du}");

    // Images: every layer once, against the layers' directories.
    let layers = snapshots(&d.root(), "layer");
    assert_eq!(layers.len(), 2, "busybox's and extra:1's own");
    let layers_size = du["LayersSize"].as_i64().unwrap();
    assert_eq!(
        layers_size,
        du_files(&layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>())
    );
    let busybox = by_name(&du["Images"], "RepoTags", "busybox:latest");
    let extra = by_name(&du["Images"], "RepoTags", "extra:1");
    let base = busybox["Size"].as_i64().unwrap();
    assert_eq!(extra["Size"].as_i64().unwrap(), base + 12345);
    assert_eq!(layers_size, base + 12345);
    assert_eq!(
        (&busybox["SharedSize"], &extra["SharedSize"]),
        (&base.into(), &base.into())
    );
    assert_eq!(
        (&busybox["Containers"], &extra["Containers"]),
        (&1.into(), &1.into())
    );

    // Containers: the rw layers, against their directories.
    let rw = snapshots(&d.root(), "container");
    for (name, bytes, image) in [("writer", 100_004, base), ("runner", 30_000, base + 12345)] {
        let c = by_name(&du["Containers"], "Names", name);
        let id = c["Id"].as_str().unwrap();
        let dir = &rw.iter().find(|(n, _)| n == id).unwrap().1;
        assert_eq!(
            c["SizeRw"].as_i64().unwrap(),
            du_files(std::slice::from_ref(dir)),
            "{name}"
        );
        assert_eq!(c["SizeRw"], bytes, "{name}");
        assert_eq!(c["SizeRootFs"], bytes + image, "{name}");
    }

    // Volumes: their `_data`, the users counted.
    for (name, bytes, users) in [("data", 7_001, 1), ("idle", 4_325, 0)] {
        let v = by_name(&du["Volumes"], "Name", name);
        let data = d.root().join(format!("volumes/{name}/_data"));
        assert_eq!(v["UsageData"]["Size"].as_i64().unwrap(), du_files(&[data]));
        assert_eq!(
            v["UsageData"],
            serde_json::json!({"RefCount": users, "Size": bytes}),
            "{name}"
        );
    }
    assert_eq!(du["BuildCache"], serde_json::json!([]));

    // The summary, as docker's CLI derives it: what images with containers hold alone is
    // in use; the rw layers of stopped containers and the unused volumes are reclaimable.
    let table = same_in_both(&d, &["system", "df"]);
    let expected = [
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE".to_string(),
        format!(
            "Images          2         2         {:<10}{}",
            human(layers_size),
            reclaimable(base, layers_size)
        ),
        format!(
            "Containers      2         1         {:<10}{}",
            human(130_004),
            reclaimable(100_004, 130_004)
        ),
        format!(
            "Local Volumes   2         1         {:<10}{}",
            human(11_326),
            reclaimable(4_325, 11_326)
        ),
        "Build Cache     0         0         0B        0B".to_string(),
    ];
    assert_eq!(table.lines().collect::<Vec<_>>(), expected, "{table}");

    let json = same_in_both(&d, &["system", "df", "--format", "{{json .}}"]);
    let rows: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows[2],
        serde_json::json!({"Active": "1", "Reclaimable": reclaimable(4_325, 11_326),
            "Size": human(11_326), "TotalCount": "2", "Type": "Local Volumes"})
    );
    assert_eq!(
        same_in_both(&d, &["system", "df", "--format", "{{.Type}}: {{.Size}}"]),
        format!(
            "Images: {}\nContainers: {}\nLocal Volumes: {}\nBuild Cache: 0B\n",
            human(layers_size),
            human(130_004),
            human(11_326)
        )
    );

    let raw = same_in_both(&d, &["system", "df", "--format", "raw"]);
    assert!(
        raw.starts_with("type: Images\ntotal: 2\nactive: 2\n"),
        "{raw}"
    );
    assert!(raw.contains("\n\ntype: Containers\n"), "{raw}");

    // -v: docker's four sections.
    let verbose = same_in_both(&d, &["system", "df", "-v"]);
    for line in [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
        "VOLUME NAME   LINKS     SIZE",
        "data          1         7.001kB",
        "idle          0         4.325kB",
        "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED",
    ] {
        assert!(verbose.lines().any(|l| l == line), "{line:?} in\n{verbose}");
    }
    let writer_line = verbose.lines().find(|l| l.contains("writer")).unwrap();
    assert!(writer_line.contains("   100kB   "), "{writer_line}");
    let verbose_json = same_in_both(&d, &["system", "df", "-v", "--format", "{{json .}}"]);
    let v: Value = serde_json::from_str(&verbose_json).unwrap();
    assert_eq!(by_name(&v["Volumes"], "Name", "idle")["Links"], "0");
    assert_eq!(
        by_name(&v["Images"], "Repository", "extra")["UniqueSize"],
        human(12345)
    );
    assert_eq!(v["BuildCache"], serde_json::json!([]));
    let mut volumes = same_in_both(
        &d,
        &[
            "system",
            "df",
            "-v",
            "--format",
            r"{{range .Volumes}}{{.Name}} {{.Links}} {{.Size}}\n{{end}}",
        ],
    );
    volumes = volumes.lines().collect::<Vec<_>>().join(",");
    assert!(
        volumes == "data 1 7.001kB,idle 0 4.325kB" || volumes == "idle 0 4.325kB,data 1 7.001kB",
        "{volumes}"
    );

    // `type` picks sections (API 1.42+); an unknown one is Docker's 400.
    let (_, only) = curl_json(&d, "GET", "/v1.44/system/df?type=volume", None);
    assert_eq!(
        (&only["Images"], &only["Containers"]),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(only["Volumes"].as_array().unwrap().len(), 2);
    let (status, err) = curl_json(&d, "GET", "/v1.44/system/df?type=volumes", None);
    assert_eq!(status, 400);
    assert_eq!(err["message"], "unknown object type: volumes");
}
