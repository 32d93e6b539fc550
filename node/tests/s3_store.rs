//! The recordings' S3 store against a real S3-compatible server (moto_server, from PyPI, on
//! loopback): the same promises the local directory keeps (whole objects replaced whole,
//! streamed reads, exact ranges and a refused one past the end, names under a prefix, keys
//! kept inside the store's prefix), under a prefix of its own in the bucket.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use sluice_launch::S3Server;
use sluice_node::recording::s3::S3Store;
use sluice_node::recording::store::{Object, Store};

async fn collect(object: Object) -> Vec<u8> {
    let parts: Vec<_> = object.body.collect().await;
    parts.into_iter().map(Result::unwrap).collect::<Vec<_>>().concat()
}

fn store(s3: &S3Server, url: &str) -> S3Store {
    let builder = AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("sluice-test")
        .with_secret_access_key("sluice-test");
    S3Store::with_builder(url, builder).unwrap()
}

#[tokio::test]
async fn an_s3_bucket_keeps_recordings_as_the_local_directory_does() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let s3 = S3Server::start().expect("moto_server (python3 -m pip install 'moto[server]')");
    s3.create_bucket("recordings").unwrap();
    let store = store(&s3, "s3://recordings/cluster-a");
    let other = store_other(&s3);

    let parts = vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")];
    store.put("live/cam/1/seg-1.m4s", parts).await.unwrap();
    assert_eq!(store.get("live/cam/1/seg-1.m4s").await.unwrap().as_deref(), Some(&b"abcd"[..]));
    store.put("live/cam/1/seg-1.m4s", vec![Bytes::from_static(b"x")]).await.unwrap();
    assert_eq!(store.get("live/cam/1/seg-1.m4s").await.unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(store.get("live/cam/1/none").await.unwrap(), None);
    assert_eq!(other.get("live/cam/1/seg-1.m4s").await.unwrap(), None, "another prefix");

    let object = store.read("live/cam/1/seg-1.m4s").await.unwrap().unwrap();
    assert_eq!(object.len, 1);
    assert_eq!(collect(object).await, b"x");
    assert!(store.read("live/cam/1/none").await.unwrap().is_none());

    store.put("live/cam/1/seg-2.m4s", vec![Bytes::from_static(b"0123456789")]).await.unwrap();
    let range = store.read_range("live/cam/1/seg-2.m4s", 3, 4).await.unwrap().unwrap();
    assert_eq!(range.len, 4);
    assert_eq!(collect(range).await, b"3456");
    let tail = store.read_range("live/cam/1/seg-2.m4s", 9, 1).await.unwrap().unwrap();
    assert_eq!(collect(tail).await, b"9");
    assert!(store.read_range("live/cam/1/seg-2.m4s", 8, 3).await.is_err(), "past the end");
    assert!(store.read_range("live/cam/1/none", 0, 1).await.unwrap().is_none());

    store.put("live/cam/2/index.m3u8", vec![Bytes::from_static(b"#EXTM3U\n")]).await.unwrap();
    let mut listed = store.list("live/cam/1").await.unwrap();
    listed.sort();
    assert_eq!(listed, ["seg-1.m4s", "seg-2.m4s"]);
    let mut ids = store.list("live/cam").await.unwrap();
    ids.sort();
    assert_eq!(ids, ["1", "2"], "recordings under a stream");
    assert!(store.list("live/none").await.unwrap().is_empty());
    assert_eq!(store.free_bytes().await.unwrap(), None, "a bucket has no floor");

    other.put("live/cam/9/index.m3u8", vec![Bytes::from_static(b"#EXTM3U\n")]).await.unwrap();
    let list = |store: &S3Store, prefix: &str| store.objects(prefix).try_collect::<Vec<_>>();
    let mut all: Vec<_> = list(&store, "").await.unwrap();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    let keys: Vec<_> = all.iter().map(|o| (o.key.as_str(), o.size)).collect();
    assert_eq!(
        keys,
        [("live/cam/1/seg-1.m4s", 1), ("live/cam/1/seg-2.m4s", 10), ("live/cam/2/index.m3u8", 8)],
        "keys under this store's prefix only, without it"
    );
    let age = all[0].modified.elapsed().unwrap_or_default();
    assert!(age < std::time::Duration::from_secs(600), "written just now: {age:?}");
    assert_eq!(list(&store, "live/cam/2").await.unwrap().len(), 1);
    assert!(list(&store, "live/ca").await.unwrap().is_empty(), "whole names only");
    store.delete("live/cam/1/seg-1.m4s").await.unwrap();
    store.delete("live/cam/1/seg-1.m4s").await.unwrap();
    store.delete_prefix("live/cam/1").await.unwrap();
    store.delete_prefix("live/none").await.unwrap();
    let left: Vec<_> = list(&store, "").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(left, ["live/cam/2/index.m3u8"]);
    assert_eq!(list(&other, "").await.unwrap().len(), 1, "the other prefix is left alone");
    for bad in ["../x", "live//x", "live/./x", "/abs"] {
        assert!(store.put(bad, vec![]).await.is_err(), "{bad}");
    }
}

fn store_other(s3: &S3Server) -> S3Store {
    store(s3, "s3://recordings/cluster-b")
}

#[test]
fn only_s3_urls_name_a_store() {
    for bad in ["recordings", "s3://", "s3:///x", "s3://b/../x", "file:///tmp"] {
        assert!(S3Store::with_builder(bad, AmazonS3Builder::new()).is_err(), "{bad}");
    }
}
