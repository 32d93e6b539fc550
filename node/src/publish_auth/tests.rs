use super::*;

fn stream(s: &str) -> StreamKey {
    let (app, name) = s.split_once('/').unwrap();
    StreamKey::parse(app, name).unwrap().0
}

fn auth() -> PublishAuth {
    let file = format!(
        "# who may publish\n\n{}\n{}\n",
        key_line(&stream("live/alice"), "k-alice-1"),
        key_line(&stream("live/bob"), "k-bob-2")
    );
    PublishAuth::new(Some(&file), Some(b"s3cret".to_vec()), vec!["open".into()]).unwrap()
}

const NOW: u64 = 1_800_000_000;

#[test]
fn a_key_as_the_stream_name_publishes_the_stream_it_stands_for() {
    let a = auth();
    assert_eq!(a.key_count(), 2);
    assert_eq!(a.check("live", "k-alice-1", NOW), Ok(stream("live/alice")));
    assert_eq!(a.check("live", "k-bob-2", NOW), Ok(stream("live/bob")));
    // A key is good in its own app only.
    assert_eq!(a.check("other", "k-alice-1", NOW), Err(AuthError::Missing("other".into())));
    // An unknown name is not a key: refused, the name is not echoed.
    let err = a.check("live", "k-mallory", NOW).unwrap_err();
    assert_eq!(err, AuthError::Missing("live".into()));
    assert!(!err.to_string().contains("mallory"), "{err}");
}

#[test]
fn a_key_in_the_query_must_be_the_streams_own() {
    let a = auth();
    assert_eq!(a.check("live", "alice?key=k-alice-1", NOW), Ok(stream("live/alice")));
    assert_eq!(a.check("live", "alice?foo=1&key=k-alice-1", NOW), Ok(stream("live/alice")));
    // Bob's key does not publish alice.
    assert_eq!(a.check("live", "alice?key=k-bob-2", NOW), Err(AuthError::WrongKey("live".into())));
    assert_eq!(a.check("live", "alice?key=", NOW), Err(AuthError::WrongKey("live".into())));
    let long = format!("alice?key={}", "x".repeat(MAX_CREDENTIAL_LEN + 1));
    assert_eq!(a.check("live", &long, NOW), Err(AuthError::WrongKey("live".into())));
    assert_eq!(a.check("live", "alice", NOW), Err(AuthError::Missing("live".into())));
}

#[test]
fn signed_tokens_cover_the_stream_and_expire() {
    let a = auth();
    let token = PublishAuth::token(b"s3cret", &stream("live/cam"), NOW + 60);
    assert_eq!(a.check("live", &format!("cam?token={token}"), NOW), Ok(stream("live/cam")));
    assert_eq!(a.check("live", &format!("cam?token={token}"), NOW + 60), Ok(stream("live/cam")));
    assert_eq!(
        a.check("live", &format!("cam?token={token}"), NOW + 61),
        Err(AuthError::Expired("live".into()))
    );
    // Another stream, app, expiry or secret: refused.
    let bad = |name: &str| a.check("live", name, NOW);
    assert_eq!(bad(&format!("cam2?token={token}")), Err(AuthError::BadToken("live".into())));
    let other_app = PublishAuth::token(b"s3cret", &stream("other/cam"), NOW + 60);
    assert_eq!(bad(&format!("cam?token={other_app}")), Err(AuthError::BadToken("live".into())));
    let (_, sig) = token.split_once('.').unwrap();
    assert_eq!(
        bad(&format!("cam?token={}.{sig}", NOW + 3600)),
        Err(AuthError::BadToken("live".into()))
    );
    let forged = PublishAuth::token(b"guess", &stream("live/cam"), NOW + 60);
    assert_eq!(bad(&format!("cam?token={forged}")), Err(AuthError::BadToken("live".into())));
    for junk in ["", ".", "abc", "1.zz", "-1.00", "99999999999999999999.00"] {
        assert_eq!(
            bad(&format!("cam?token={junk}")),
            Err(AuthError::BadToken("live".into())),
            "{junk}"
        );
    }
    // No token secret configured: no token is good.
    let keys_only = PublishAuth::new(None, None, vec![]).unwrap();
    assert_eq!(
        keys_only.check("live", &format!("cam?token={token}"), NOW),
        Err(AuthError::BadToken("live".into()))
    );
}

#[test]
fn open_apps_take_any_publisher() {
    let a = auth();
    assert_eq!(a.check("open", "anything", NOW), Ok(stream("open/anything")));
    assert_eq!(a.check("open", "bad name!", NOW), Err(AuthError::Missing("open".into())));
}

#[test]
fn the_keys_file_is_checked_line_by_line() {
    let bad = |text: &str| PublishAuth::new(Some(text), None, vec![]).unwrap_err().line;
    let good = key_line(&stream("live/a"), "k");
    assert_eq!(bad(&format!("{good}\nlive/b sha256:00\n")), 2);
    assert_eq!(bad("live/b"), 1);
    assert_eq!(bad("live sha256:00"), 1);
    assert_eq!(bad(&format!("# c\n{}", good.replace("sha256:", "md5:"))), 2);
    assert_eq!(bad(&format!("{good}\n{}", good.replace("live/a", "live/b"))), 2, "a key twice");
    assert_eq!(bad(&format!("{good} extra")), 1);
    assert!(key_line(&stream("live/a"), "k").ends_with(&hex::encode(key_hash("k"))));
}
