#!/usr/bin/env bash
# Runs a command in a throw-away QEMU guest on a pure cgroup v2 kernel (Debian's own
# `linux-image-amd64`, booted with `cgroup_no_v1=all`), for the tests that must see a real
# v2 host. The guest sees this machine's `/` read-only over 9p and switch_roots into it, so
# the host's binaries (test binaries built on the host, busybox, the docker CLI) run unchanged;
# `/tmp`, `/run`, `/var/tmp`, `/root` are fresh tmpfs, except the current directory and each
# `-k DIR`, which stay visible (read-only) there (a checkout under /tmp, as CI may make), and
# `-w DIR` shares DIR read-write.
#
#   scripts/v2vm.sh setup                                fetch the kernel, build the initramfs
#                                                        (cached)
#   scripts/v2vm.sh run [-k DIR]... [-w DIR]... -- CMD... exit code = CMD's in the guest
#
# Root only. No KVM: TCG emulation (nested KVM does not boot a stock kernel everywhere CI
# runs); CPU-bound code runs ~6x slower, a boot costs ~6 s, so run many tests per guest.
# A guest that hangs is a failure: `timeout` around QEMU (V2VM_TIMEOUT, seconds), and a
# kernel panic ends it (`panic=-1` with `-no-reboot`), a soft lockup of two minutes
# included (`watchdog_thresh=60 softlockup_panic=1`).
# With two vCPUs on multi-threaded TCG the guest kernel twice livelocked in CI, both vCPU
# threads at 100 % for good inside a cgroup mkdir's slab allocation (a "soft lockup ...
# stuck for 45s" there, then, with the watchdog off, a tier that stopped after 4 of
# runtime/cgroups' 17 tests): rare, and now a panic after two minutes, which test-v2.sh
# answers by running the guest once more. One vCPU (V2VM_SMP=1, single-threaded TCG)
# avoids it but starves the shim tests' timing (two failed so in a CI run): not the default. The packages (qemu, kmod,
# cpio, xz, busybox-static) come from scripts/deps.sh.
set -euo pipefail

CACHE=${V2VM_CACHE:-/var/cache/berth/v2vm}
# Modules the initramfs loads: the 9p shares, overlay for containers' root filesystems, veth,
# loop and tun (/dev/net/tun, for --device) for the tests that use them (a host has them when
# used); a bridge network's (bridge, nftables with NAT, fib and conntrack; crc32c_generic,
# which libcrc32c needs but does not name as a dependency) and sctp, for the
# published sctp ports this machine's own kernel cannot make (the guest's root is the host's
# tree: the kernel could not load them on demand from there).
MODULES=(virtio_pci 9pnet_virtio 9p overlay veth loop tun crc32c_generic bridge nf_tables nf_conntrack nf_nat
    nft_chain_nat nft_nat nft_masq nft_ct nft_fib_inet nft_fib_ipv4 nft_fib_ipv6 nft_limit sctp)

die() { echo "v2vm: $*" >&2; exit 1; }

# The kernel package linux-image-amd64 currently points at (linux-image-6.1.0-NN-amd64).
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# Prints the cache directory of a ready kernel + initramfs, making them if needed.
setup() {
    for tool in qemu-system-x86_64 busybox depmod modprobe cpio xz apt-get dpkg-deb; do
        command -v "$tool" >/dev/null || die "$tool is missing: run scripts/deps.sh"
    done
    local pkg
    pkg=$(kernel_package)
    if [ -z "$pkg" ]; then
        apt-get update -qq
        pkg=$(kernel_package)
    fi
    [ -n "$pkg" ] || die "apt knows no linux-image-amd64 kernel"
    # Keyed by this script too: a change to the modules or the init makes a new initramfs.
    local dir
    dir=$CACHE/$pkg-$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
    if [ -f "$dir/vmlinux" ] && [ -f "$dir/initrd.gz" ]; then
        echo "$dir"
        return
    fi
    mkdir -p "$CACHE"
    local work
    work=$(mktemp -d "$CACHE/.setup.XXXXXX")
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "rm -rf '$work'" EXIT
    (
        cd "$work"
        apt-get download -qq "$pkg" >&2 2>/dev/null || apt-get download "$pkg" >&2
        dpkg-deb -x ./*.deb kdeb
        local kv
        kv=$(ls kdeb/lib/modules)
        depmod -b "$work/kdeb" "$kv"
        # The bzImage's payload is xz: QEMU boots the plain ELF vmlinux (PVH entry) without
        # running the decompressor under emulation.
        local vmlinuz=kdeb/boot/vmlinuz-$kv offset
        offset=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
        [ -n "$offset" ] || die "no xz payload in $vmlinuz"
        tail -c +$((offset + 1)) "$vmlinuz" >payload.xz
        xz -dc --single-stream payload.xz >vmlinux
        mkdir -p initrd/{bin,proc,sys,dev,host,xfer} "initrd/lib/modules/$kv"
        cp "$(command -v busybox)" initrd/bin/busybox
        local m line
        for m in "${MODULES[@]}"; do
            # `insmod /abs/path.ko` lines for a module and its dependencies; `builtin` else.
            while read -r line; do
                case $line in
                    insmod\ *)
                        local ko=${line#insmod }
                        ko=${ko%% *}
                        local rel=${ko#"$work/kdeb/lib/modules/$kv/"}
                        mkdir -p "initrd/lib/modules/$kv/$(dirname "$rel")"
                        cp "$ko" "initrd/lib/modules/$kv/$rel"
                        ;;
                esac
            done < <(modprobe -d "$work/kdeb" -S "$kv" --show-depends "$m")
        done
        cp "kdeb/lib/modules/$kv"/modules.{builtin,builtin.modinfo,order} "initrd/lib/modules/$kv/"
        depmod -b "$work/initrd" "$kv"
        write_init >initrd/init
        chmod 755 initrd/init
        (cd initrd && find . | cpio -o -H newc 2>/dev/null | gzip -1) >initrd.gz
        mkdir -p "$dir"
        mv vmlinux initrd.gz "$dir/"
    )
    rm -rf "$work"
    trap - EXIT
    echo "$dir"
}

# The guest's /init (busybox sh): mount the shares, make the host's tree usable as a root,
# enable the v2 controllers, run the command, leave its exit code in the xfer share.
write_init() {
    cat <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for m in ${MODULES[*]}; do modprobe \$m; done
# Loopback up, as on a booted machine (127.0.0.1 and ::1).
ip link set lo up
EOF
    cat <<'EOF'
for a in $(cat /proc/cmdline); do
    case $a in v2xfer=*) XFER=${a#*=};; v2rw=*) RWP=${a#*=};; v2keep=*) KEEP=${a#*=};; esac
done
O=trans=virtio,version=9p2000.L,msize=512000
fail() { echo "V2VM-SETUP-FAILED: $*"; poweroff -f; }
mount -t 9p -o $O,ro hostroot /host || fail "9p root"
mount -t 9p -o $O xfer /xfer || fail "9p xfer"
H=/host
mount -t proc proc $H/proc
mount -t sysfs sysfs $H/sys
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $H/sys/fs/cgroup || fail "cgroup2"
mount -t devtmpfs dev $H/dev
mkdir -p $H/dev/pts $H/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $H/dev/pts
mount -t tmpfs shm $H/dev/shm
# The directories to keep are bound aside, the fresh tmpfs mounted, and they are moved back
# onto it (parents first: the order given).
i=0
for k in $(echo "$KEEP" | tr , ' '); do
    mkdir -p /keep/$i && mount --bind $H$k /keep/$i || fail "keep $k"
    i=$((i + 1))
done
for d in /tmp /run /var/tmp /root; do mount -t tmpfs tmpfs $H$d; done
i=0
for k in $(echo "$KEEP" | tr , ' '); do
    [ -d $H$k ] || mkdir -p $H$k
    mount --move /keep/$i $H$k || fail "keep $k"
    i=$((i + 1))
done
i=0
for p in $(echo "$RWP" | tr , ' '); do
    [ -d $H$p ] || mkdir -p $H$p
    mount -t 9p -o $O rw$i $H$p || fail "9p $p"
    i=$((i + 1))
done
mkdir -p $H$XFER && mount --bind /xfer $H$XFER
echo "+cpuset +cpu +io +memory +pids" >$H/sys/fs/cgroup/cgroup.subtree_control || fail "subtree_control"
# The host's tree becomes the root as on a booted machine (switch_root: moved onto /, then
# chroot), not a chroot inside the initramfs: a process entering a mount namespace (setns)
# lands on what is mounted on the namespace's root, which must be the system, not the
# initramfs.
printf '%s\n' "bash $XFER/cmd.sh 2>&1; echo \$? >$XFER/rc; sync; exec /bin/busybox poweroff -f" >/xfer/stage2.sh
umount /proc /sys
umount /dev 2>/dev/null
exec switch_root $H /bin/bash $XFER/stage2.sh
EOF
}

run() {
    local rw=() keep=("$PWD") mem=${V2VM_MEM:-4G}
    while [ $# -gt 0 ]; do
        case $1 in
            -w) rw+=("$(realpath "$2")"); shift 2 ;;
            -k) keep+=("$(realpath "$2")"); shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    [ $# -gt 0 ] || die "usage: $0 run [-k DIR]... [-w DIR]... -- CMD..."
    local dir
    dir=$(setup)
    local x
    x=$(mktemp -d /tmp/v2vm.XXXXXX)
    # shellcheck disable=SC2064 # expand now: $x is local
    trap "rm -rf '$x'" EXIT
    # The command runs in the guest's chroot with this environment and directory.
    {
        export -p | grep -v -E '^declare -x (OLDPWD|PWD|SHLVL|_|TMPDIR)='
        printf 'cd %q || exit 125\n' "$PWD"
        printf 'exec'
        printf ' %q' "$@"
        echo
    } >"$x/cmd.sh"
    local fs=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
        -virtfs "local,path=$x,mount_tag=xfer,security_model=none")
    local i
    for i in "${!rw[@]}"; do
        fs+=(-virtfs "local,path=${rw[$i]},mount_tag=rw$i,security_model=none,multidevs=remap")
    done
    local rwlist keeplist
    rwlist=$(IFS=,; echo "${rw[*]-}")
    # Only what the guest's tmpfs would hide, and no directory inside another kept one.
    # (`|| true`: none may match, and under pipefail grep's 1 would end the script silently.)
    keeplist=$(printf '%s\n' "${keep[@]}" | { grep -E '^/(tmp|run|var/tmp|root)/' || true; } | sort -u |
        awk '{ for (i = 1; i <= n; i++) if (index($0 "/", kept[i] "/") == 1) next; kept[++n] = $0; print }' |
        paste -sd,)
    case "$rwlist,$keeplist" in
        *' '*) die "the shared and kept paths may not contain spaces (the kernel command line)" ;;
    esac
    local status=0
    local smp=${V2VM_SMP:-$(nproc)} threads=single
    [ "$smp" = 1 ] || threads=multi
    timeout -k 10 "${V2VM_TIMEOUT:-3600}" qemu-system-x86_64 \
        -accel "tcg,thread=$threads,tb-size=1024" -cpu max -M pc -m "$mem" -smp "$smp" \
        -display none -monitor none -serial stdio -no-reboot \
        -kernel "$dir/vmlinux" -initrd "$dir/initrd.gz" "${fs[@]}" \
        -append "console=ttyS0 quiet loglevel=1 panic=-1 watchdog_thresh=60 softlockup_panic=1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 v2xfer=$x v2rw=$rwlist v2keep=$keeplist" \
        </dev/null | sed -u -e 's/\r$//' -e '/reboot: Power down$/d' || status=$?
    if [ ! -f "$x/rc" ]; then
        echo "v2vm: the guest gave no exit code (a setup failure above, a timeout after ${V2VM_TIMEOUT:-3600} s, a panic or a crash; qemu/pipe status $status)" >&2
        exit 125
    fi
    exit "$(cat "$x/rc")"
}

[ "$(id -u)" = 0 ] || die "run as root"
case ${1-} in
    setup) setup >/dev/null ;;
    run) shift; run "$@" ;;
    *) die "usage: $0 setup | run [-k DIR]... [-w DIR]... -- CMD..." ;;
esac
