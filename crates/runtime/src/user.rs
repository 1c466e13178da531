//! Resolving docker's `-u` syntax against the image's `/etc/passwd` and `/etc/group`, the way
//! runc's `user.GetExecUser` does (Docker's error texts included).

use crate::error::RuntimeError;

/// The resolved identity of the container process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: memberships in `/etc/group` (only when no group was given
    /// explicitly), then `--group-add`.
    pub additional_gids: Vec<u32>,
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn parse_passwd(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if line.starts_with('#') || f.len() < 4 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f.get(5).copied().unwrap_or(""),
        })
    })
}

fn parse_group(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if line.starts_with('#') || f.len() < 3 {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| m.split(',').filter(|s| !s.is_empty()).collect())
                .unwrap_or_default(),
        })
    })
}

/// The largest uid or gid a spec may name (runc's limit, for 32-bit compatibility).
const MAX_ID: i64 = i32::MAX as i64;

/// A numeric uid or gid: `Ok(None)` when `s` is not a number (then it is a name),
/// runc's range error when it is one outside `0..=2147483647` (a sign is allowed, as
/// Go's `Atoi` allows it: `-1` is out of range, not a name).
fn numeric(s: &str) -> Result<Option<u32>, RuntimeError> {
    use std::num::IntErrorKind;
    let out_of_range =
        || RuntimeError::InvalidSpec(format!("uids and gids must be in range 0-{MAX_ID}"));
    match s.parse::<i64>() {
        Ok(n) if (0..=MAX_ID).contains(&n) => Ok(Some(n as u32)),
        Ok(_) => Err(out_of_range()),
        Err(e)
            if matches!(
                e.kind(),
                IntErrorKind::PosOverflow | IntErrorKind::NegOverflow
            ) =>
        {
            Err(out_of_range())
        }
        Err(_) => Ok(None),
    }
}

/// Resolves `spec` (`""`, `name`, `uid`, `uid:gid`, `name:group`, `uid:groupname`) with the
/// contents of the image's passwd and group files (`None`: the file does not exist).
pub(crate) fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
    extra_gids: &[u32],
) -> Result<ExecUser, RuntimeError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
    let passwd = passwd.unwrap_or("");
    let user_uid = numeric(user_arg)?;
    let group_gid = group_arg.map(numeric).transpose()?.flatten();
    let entry = parse_passwd(passwd).find(|e| match user_uid {
        Some(uid) => e.uid == uid,
        None => e.name == user_arg,
    });
    let (uid, mut gid, home, name) = match (&entry, user_uid) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        (None, Some(uid)) => (uid, 0, "/".to_string(), None),
        (None, None) => return Err(RuntimeError::UserNotFound(user_arg.to_string())),
    };
    let home = if home.is_empty() { "/".into() } else { home };
    let mut additional_gids = Vec::new();
    match group_arg.filter(|g| !g.is_empty()) {
        Some(g) => {
            gid = match group_gid {
                Some(gid) => gid,
                None => parse_group(group.unwrap_or(""))
                    .find(|e| e.name == g)
                    .map(|e| e.gid)
                    .ok_or_else(|| RuntimeError::GroupNotFound(g.to_string()))?,
            };
        }
        None => {
            if let Some(name) = name {
                additional_gids.extend(
                    parse_group(group.unwrap_or(""))
                        .filter(|e| e.members.contains(&name))
                        .map(|e| e.gid),
                );
            }
        }
    }
    for g in extra_gids {
        if !additional_gids.contains(g) {
            additional_gids.push(*g);
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/bin/false\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:root,daemon\nnogroup:x:65534:\nstaff:x:50:daemon\n";

    fn r(spec: &str) -> Result<ExecUser, RuntimeError> {
        resolve(spec, Some(PASSWD), Some(GROUP), &[])
    }

    #[test]
    fn empty_user_is_root_with_its_groups() {
        let u = r("").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (0, 0, "/root"));
        assert_eq!(u.additional_gids, vec![10]);
    }

    #[test]
    fn name_resolves_uid_gid_home_and_memberships() {
        let u = r("daemon").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1, 1, "/usr/sbin"));
        assert_eq!(u.additional_gids, vec![10, 50]);
        let u = r("nobody").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534));
    }

    #[test]
    fn numeric_uid_without_entry_gets_gid_zero() {
        let u = r("1234").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (1234, 0, "/"));
        assert!(u.additional_gids.is_empty());
    }

    #[test]
    fn uid_gid_and_group_names() {
        let u = r("1000:1000").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let u = r("daemon:staff").unwrap();
        assert_eq!((u.uid, u.gid), (1, 50));
        assert!(u.additional_gids.is_empty());
        let u = r("65534:wheel").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 10));
    }

    #[test]
    fn missing_user_and_group_have_dockers_text() {
        let e = r("nosuch").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user nosuch: no matching entries in passwd file"
        );
        let e = r("root:nosuch").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find group nosuch: no matching entries in group file"
        );
        let e = resolve("someone", None, None, &[]).unwrap_err();
        assert!(e.to_string().contains("no matching entries in passwd file"));
    }

    #[test]
    fn ids_out_of_range_have_runcs_text() {
        let range = "uids and gids must be in range 0-2147483647";
        for spec in [
            "99999999999",
            "0:99999999999",
            "2147483648",
            "root:2147483648",
            "-1",
            "0:-1",
            "99999999999999999999999",
        ] {
            let e = r(spec).unwrap_err();
            assert_eq!(e.to_string(), range, "{spec}");
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument);
        }
        // Checked before the lookup, as runc does: not "unable to find user".
        assert_eq!(
            resolve("99999999999", None, None, &[])
                .unwrap_err()
                .to_string(),
            range
        );
        let u = r("2147483647:2147483647").unwrap();
        assert_eq!((u.uid, u.gid), (2147483647, 2147483647));
        let u = r("+5").unwrap();
        assert_eq!(u.uid, 5);
    }

    #[test]
    fn group_add_is_appended_once() {
        let u = resolve("root", Some(PASSWD), Some(GROUP), &[10, 99]).unwrap();
        assert_eq!(u.additional_gids, vec![10, 99]);
    }
}
