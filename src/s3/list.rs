//! Streamed listing: a task on the I/O runtime pages through ListObjectsV2 and
//! hands keys over a bounded channel, so listing runs ahead of processing and a
//! bucket of millions of keys never sits in memory.

use super::input::Listed;
use super::{Bucket, S3Error, spawn};
use futures::StreamExt;
use object_store::ObjectStore;

/// Keys buffered ahead of the workers: enough to keep them busy across a page
/// boundary (pages are 1,000 keys).
const AHEAD: usize = 4096;

/// One listed key, or the error that ended the listing.
pub enum Item {
    Object(Listed),
    Error(S3Error),
}

/// Every object under the bucket's prefix, in the store's order (not necessarily
/// byte order: SeaweedFS lists directories first). Keys of the tool's own
/// bookkeeping (`.dicom-deid-*`) are left out.
pub fn objects(bucket: &Bucket) -> impl Iterator<Item = Item> + Send + use<> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(AHEAD);
    let store = bucket.store.clone();
    let name = bucket.url.bucket.clone();
    let prefix = bucket.url.prefix.clone();
    spawn(async move {
        let p = object_store::path::Path::from(prefix.as_str());
        let mut stream = store.list((!prefix.is_empty()).then_some(&p));
        while let Some(r) = stream.next().await {
            let item = match r {
                Ok(meta) => {
                    let key = meta.location.to_string();
                    if key.split('/').any(|seg| seg.starts_with(".dicom-deid-")) {
                        continue;
                    }
                    Item::Object(Listed {
                        key,
                        size: meta.size,
                        e_tag: meta.e_tag,
                        mtime_ns: meta
                            .last_modified
                            .timestamp_nanos_opt()
                            .map_or(0, i128::from),
                    })
                }
                Err(e) => Item::Error(S3Error::from_store(e, &name)),
            };
            let stop = matches!(item, Item::Error(_));
            // Waits when the workers fall behind: the listing stays AHEAD keys ahead.
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    std::iter::from_fn(move || rx.blocking_recv())
}
