//! The catalog on SQLite and on a real PostgreSQL (Debian's server, started here): the same
//! writes, then the same searches, which must find the same items in the same order.

use std::time::Duration;

use proptest::prelude::*;
use sluice_catalog::{Catalog, CatalogError, Facts, Kind, Metadata, Query};

const T: Duration = Duration::from_secs(20);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn recording(app: &str, stream: &str, start: i64, end: i64) -> Facts {
    let mut f = Facts::recording(app, stream, &start.to_string(), start, "n1");
    f.ended_ms = Some(end);
    f.duration_ms = end - start;
    f.size_bytes = (end - start) * 10;
    f.video_codec = Some("h264".into());
    f.audio_codec = Some("aac".into());
    (f.width, f.height) = (Some(1280), Some(720));
    f
}

fn meta(title: &str, description: &str, tags: &[&str]) -> Metadata {
    Metadata {
        title: Some(title.into()),
        description: Some(description.into()),
        tags: Some(tags.iter().map(ToString::to_string).collect()),
    }
}

/// The ids a search finds, every page followed.
async fn ids(c: &Catalog, q: Query) -> Vec<String> {
    let mut out = Vec::new();
    let mut q = q;
    loop {
        let page = c.search(&q).await.unwrap();
        out.extend(page.items.iter().map(|i| i.id.clone()));
        match page.next_page {
            Some(next) => q.page = Some(next),
            None => return out,
        }
    }
}

/// Writes a small catalog, checks it, and returns what a set of searches found.
async fn suite(c: &Catalog) -> Vec<Vec<String>> {
    assert!(c.search(&Query::default()).await.unwrap().items.is_empty());
    // A live stream, titled by its broadcaster; its recording takes the title and tags.
    c.record(&Facts::live("live", "cup", 1_000, "n1")).await.unwrap();
    c.describe("live/cup", meta("Über Cup final", "Round 3, 100% live", &["Sport", "cup"]))
        .await
        .unwrap();
    c.record(&recording("live", "cup", 1_000, 61_000)).await.unwrap();
    let rec = c.get("live/cup/1000").await.unwrap().expect("the recording's item");
    assert_eq!(rec.title, "Über Cup final");
    assert_eq!(rec.tags, vec!["cup", "sport"]);
    assert_eq!((rec.kind, rec.duration_ms, rec.size_bytes), (Kind::Recording, 60_000, 600_000));
    assert_eq!(
        (rec.width, rec.height, rec.video_codec.as_deref()),
        (Some(1280), Some(720), Some("h264"))
    );
    assert_eq!(rec.location, "/vod/live/cup/1000/index.m3u8");
    // Written again (its figures grew, no codec known this time): what people said stays,
    // and the codecs known before too.
    let mut again = recording("live", "cup", 1_000, 91_000);
    again.video_codec = None;
    again.thumbnail = Some("/vod/live/cup/1000/thumb.jpg".into());
    c.record(&again).await.unwrap();
    let rec = c.get("live/cup/1000").await.unwrap().unwrap();
    assert_eq!((rec.title.as_str(), rec.duration_ms), ("Über Cup final", 90_000));
    assert_eq!(rec.video_codec.as_deref(), Some("h264"));
    assert_eq!(rec.thumbnail.as_deref(), Some("/vod/live/cup/1000/thumb.jpg"));

    // Said of a live stream, it is said of its recording being written, not of finished ones.
    c.record(&Facts::live("live", "late", 5_000, "n1")).await.unwrap();
    let mut open = recording("live", "late", 5_000, 6_000);
    open.ended_ms = None;
    c.record(&open).await.unwrap();
    c.record(&recording("live", "late", 4_000, 4_500)).await.unwrap();
    c.describe("live/late", meta("Late title", "", &["late"])).await.unwrap();
    let open = c.get("live/late/5000").await.unwrap().unwrap();
    assert_eq!((open.title.as_str(), open.tags.clone()), ("Late title", vec!["late".to_string()]));
    assert_eq!(c.get("live/late/4000").await.unwrap().unwrap().title, "live/late");
    for id in ["live/late", "live/late/5000", "live/late/4000"] {
        assert!(c.remove(id).await.unwrap());
    }

    for (stream, start, end, title, tags) in [
        ("news", 100_000, 200_000, "Evening news", &["news"][..]),
        ("news", 300_000, 400_000, "Morning news", &["news", "morning"][..]),
        ("talk", 300_000, 350_000, "Tech talk: 50_50 odds", &["tech"][..]),
        ("talk", 500_000, 900_000, "Another tech talk", &["tech", "long"][..]),
    ] {
        c.record(&recording("live", stream, start, end)).await.unwrap();
        let id = format!("live/{stream}/{start}");
        let item = c.describe(&id, meta(title, "", tags)).await.unwrap();
        assert_eq!(item.title, title);
    }
    // Bad input is refused with the reason, and unknown items are not found.
    let err = c.describe("live/none", meta("x", "", &[])).await.unwrap_err();
    assert!(matches!(err, CatalogError::NotFound), "{err}");
    let err = c.describe("live/cup", meta("x", "", &["no spaces"])).await.unwrap_err();
    assert!(matches!(err, CatalogError::Invalid(_)), "{err}");
    let err = c.search(&Query { page: Some("nope".into()), ..Query::default() }).await;
    assert!(matches!(err, Err(CatalogError::Invalid(_))));

    let searches = [
        Query::default(),
        Query { text: "news".into(), ..Query::default() },
        Query { text: "NEWS evening".into(), ..Query::default() },
        Query { text: "über".into(), ..Query::default() },
        Query { text: "100%".into(), ..Query::default() },
        Query { text: "50_50".into(), ..Query::default() },
        Query { text: "5_5".into(), ..Query::default() },
        Query { text: "talk".into(), tags: vec!["LONG".into()], ..Query::default() },
        Query { tags: vec!["news".into(), "morning".into()], ..Query::default() },
        Query { kind: Some(Kind::Live), ..Query::default() },
        Query { from_ms: Some(320_000), to_ms: Some(600_000), ..Query::default() },
        Query { from_ms: Some(950_000), ..Query::default() },
        Query { to_ms: Some(100_000), kind: Some(Kind::Recording), ..Query::default() },
        Query { stream: Some("talk".into()), limit: 1, ..Query::default() },
        Query { limit: 2, ..Query::default() },
    ];
    let mut found = Vec::new();
    for q in searches {
        found.push(ids(c, q).await);
    }
    let expect = |v: &[&str]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(
        found[0],
        expect(&[
            "live/talk/500000",
            "live/news/300000",
            "live/talk/300000",
            "live/news/100000",
            "live/cup",
            "live/cup/1000"
        ])
    );
    assert_eq!(found[1], expect(&["live/news/300000", "live/news/100000"]));
    assert_eq!(found[2], expect(&["live/news/100000"]));
    assert_eq!(found[3], expect(&["live/cup", "live/cup/1000"]));
    assert_eq!(found[4], expect(&["live/cup", "live/cup/1000"]), "'%' is a character");
    assert_eq!(found[5], expect(&["live/talk/300000"]));
    assert!(found[6].is_empty(), "'_' is a character: {:?}", found[6]);
    assert_eq!(found[7], expect(&["live/talk/500000"]));
    assert_eq!(found[8], expect(&["live/news/300000"]));
    assert_eq!(found[9], expect(&["live/cup"]));
    // Overlapping [320 s, 600 s): the two talks, the morning news, and the live stream (still
    // live: it lasts until now).
    assert_eq!(
        found[10],
        expect(&["live/talk/500000", "live/news/300000", "live/talk/300000", "live/cup"])
    );
    assert_eq!(found[11], expect(&["live/cup"]));
    assert_eq!(found[12], expect(&["live/cup/1000"]));
    assert_eq!(found[13], expect(&["live/talk/500000", "live/talk/300000"]));
    assert_eq!(found[14], found[0], "pages of two give everything once, in order");

    // A restart ends its node's live items; removing an item removes it from searches.
    assert_eq!(c.end_live_of(Some("n1"), 2_000_000).await.unwrap(), 1);
    let live = c.get("live/cup").await.unwrap().unwrap();
    assert_eq!((live.ended_ms, live.duration_ms), (Some(2_000_000), 1_999_000));
    assert!(c.remove("live/news/100000").await.unwrap());
    assert!(!c.remove("live/news/100000").await.unwrap());
    assert_eq!(
        ids(c, Query { tags: vec!["news".into()], ..Query::default() }).await,
        expect(&["live/news/300000"])
    );
    assert_eq!(c.ids(Kind::Recording, None).await.unwrap().len(), 4);
    found
}

#[test]
fn sqlite_and_postgresql_find_the_same_items() {
    let dir = std::env::temp_dir().join(format!("sluice-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("catalog.db");
    let sqlite = rt().block_on(async {
        let c = Catalog::open(&format!("sqlite://{}", file.display()), T).await.unwrap();
        suite(&c).await
    });
    // The file is the catalog: opened again (migrations already applied), it holds the items.
    rt().block_on(async {
        let c = Catalog::open(&format!("sqlite://{}", file.display()), T).await.unwrap();
        assert_eq!(c.get("live/cup/1000").await.unwrap().unwrap().title, "Über Cup final");
    });
    let pg = sluice_launch::Postgres::start().expect("PostgreSQL (Debian package postgresql)");
    pg.create_database("catalog").unwrap();
    let postgres = rt().block_on(async {
        let c = Catalog::open(&pg.url("catalog"), T).await.unwrap();
        assert_eq!(c.backend(), sluice_catalog::db::Backend::Postgres);
        let found = suite(&c).await;
        // Migrations run once: a second catalog on the same database opens it as it is.
        let again = Catalog::open(&pg.url("catalog"), T).await.unwrap();
        assert_eq!(again.ids(Kind::Recording, Some("n1")).await.unwrap().len(), 4);
        found
    });
    assert_eq!(sqlite, postgres);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unreachable_database_is_a_clear_error_within_the_deadline() {
    let port = sluice_launch::process::free_port();
    let url = format!("postgres://postgres:secret@127.0.0.1:{port}/x");
    let err = rt().block_on(Catalog::open(&url, Duration::from_secs(2))).unwrap_err().to_string();
    assert!(!err.contains("secret"), "{err}");
    assert!(err.contains("catalog"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// However many items share a start and however small the pages, following the pages
    /// gives every item once, newest first (ties by id).
    #[test]
    fn pages_give_every_item_once_in_order(
        starts in prop::collection::vec(0i64..6, 0..30),
        limit in 1usize..5,
    ) {
        let got = rt().block_on(async {
            let c = Catalog::open("sqlite::memory:", T).await.unwrap();
            for (i, start) in starts.iter().enumerate() {
                c.record(&recording("live", &format!("s{i}"), *start, start + 1)).await.unwrap();
            }
            ids(&c, Query { limit, ..Query::default() }).await
        });
        let mut want: Vec<(i64, String)> = starts
            .iter()
            .enumerate()
            .map(|(i, s)| (-s, format!("live/s{i}/{s}")))
            .collect();
        want.sort();
        prop_assert_eq!(got, want.into_iter().map(|(_, id)| id).collect::<Vec<_>>());
    }
}
