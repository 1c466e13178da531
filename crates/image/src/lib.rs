//! berth-image: everything about images on one host.
//!
//! Owns the content store (`blobs/sha256/<hex>`, raw bytes named by their digest), the names
//! (`refs.json`: familiar `name:tag` -> image id), image metadata (`images/<hex>.json`: the
//! layer list with diff ids, chain ids and blobs), layer unpacking (tar; gzip, bzip2, xz, zstd; Docker
//! whiteouts converted to overlayfs form; a symlink-safe root-relative walk, ARCHITECTURE.md §8),
//! overlay snapshots (`snapshots/<n>/{fs,work}`, shared by chain id) and image archives
//! (`docker save` / `docker load` / OCI layout / `docker import`).
//!
//! It does not know about containers beyond a snapshot key and an `in_use` callback, does not
//! mount anything (it returns [`Mount`]s for the engine to apply) and does not talk to
//! registries. It depends on no other berth crate.
//!
//! Main types: [`ImageStore`] (the operations), [`ImageRecord`] and [`ImageConfig`] (what an
//! image is), [`ImageError`] with [`ErrorKind`], and [`normalize_reference`].
//!
//! Flow of a `load`: the outer tar is extracted into flat files under `ingest/` and hashed;
//! `manifest.json` (or `index.json`) names config and layers; layer blobs move into `blobs/`;
//! each layer is decompressed, hashed (checked against the config's `diff_ids`) and unpacked
//! into `snapshots/tmp-*`, then renamed to `snapshots/<n>`; `images/<hex>.json` is written last
//! (the commit point), then `refs.json`. Every state file is written atomically (temp, fsync,
//! rename, fsync dir). A crash leaves only temp dirs, ingest files and unreferenced
//! blobs/layers, which [`ImageStore::open`] removes.
//!
//! Flow of an `import`: one pass over the input, which is spooled into `ingest/` as it
//! came (compressed or not: it becomes the layer's blob) while it is decompressed, hashed
//! (the diff id) and unpacked; disk use is the input plus one unpacked copy.
//!
//! A container's own files: [`ImageStore::container_changes`] (`docker diff`),
//! [`ImageStore::export_container`] (`docker export`, streamed) and
//! [`ImageStore::commit_container`] (`docker commit`: the changes as a new layer on the
//! container's image) read its rw layer against the layers below it, through directory
//! descriptors only (`merged.rs`: a running container cannot lead the walk out through a
//! symlink), with a shared init layer (`<store>/init`) standing for Docker's: the runtime's
//! mount points are never a change.
//!
//! Every `load` and `import` (and the engine's `docker cp` into a container, through
//! [`Budget::for_archive`]) runs on a budget ([`IngestLimits`]: `--max-ingest-size` and a
//! free-space reserve, by default 10 % of the filesystem or 2 GiB, whichever is less): all it
//! decompresses and writes is charged, and the first byte over stops it with a 413-kind
//! error ([`ErrorKind::TooLarge`]); what it wrote is removed at once. Malformed input is a
//! 400 with the tar reader's or decompressor's cause, never a path of the store; quoted
//! names are cut to 256 bytes. An image with more layers than the overlay mount stacks
//! (500, or what fits one page of options on kernels before 6.8) is refused at load.
//!
//! `rmi` follows Docker's `ImageDelete`: removing one of several names only untags; removing the
//! last name deletes the image; by id with several names needs force; an image used by a
//! container (`in_use`) is a conflict unless forced. The callback cannot tell running from
//! stopped containers, so every use is a soft ("must be forced") conflict here: the engine
//! refuses `rmi -f` of an image with running containers itself if it wants Docker's hard one.
//! Layers a container snapshot still sits on survive the image's removal.

mod archive;
mod budget;
mod changes;
mod config;
mod content;
mod copyup;
mod diff;
mod error;
mod export;
mod initlayer;
mod merged;
pub mod reference;
mod snapshot;
mod store;
mod tarbound;
mod tarfs;
mod types;
mod unpack;

pub use budget::{Budget, IngestLimits};
pub use config::{ContainerConfig, Healthcheck, History, ImageConfig, RootFs};
pub use diff::{Change, ChangeKind};
pub use error::{ErrorKind, ImageError};
pub use reference::normalize_reference;
pub use snapshot::Mount;
pub use store::{chain_ids, ImageSource, ImageStore, LayerIngest, SourceLayer, StagedLayer};
pub use tarbound::{BoundedTar, MAX_HEADERS};
pub use types::{
    CacheRecord, CommitOptions, DeleteItem, HistoryItem, ImageRecord, ImportOptions, LabelFilter,
    LayerSharing, LoadedImage, PruneReport,
};
pub use unpack::{decompress, Compression};
