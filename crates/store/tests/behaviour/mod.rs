//! Behaviour every engine of [`Store`] must show, run on SQLite by `tests/sqlite.rs` and on
//! PostgreSQL by `tests/postgres.rs`: the queries are written once, and so are their checks.

use place_store::{NewEvent, Restore, Selection, Store, StoreError};

fn placed(x: u32, y: u32, color: u8, user_id: i64, placed_at: i64, tile_seq: u64) -> NewEvent {
    NewEvent {
        x,
        y,
        color,
        user_id,
        placed_at,
        tile_seq,
        action_id: None,
    }
}

/// The admin panel's pixel list and a rollback take a pixel's placements in its tile's seq
/// order, also when the ids run the other way (in the cluster, ids of several shards
/// interleave); the user list, the figures and the audit log agree.
pub async fn admin_lists_and_rollbacks_follow_tile_seqs(store: &Store) {
    let alice = store.create_guest("alice", 0).await.expect("guest");
    let bob = store.create_guest("bob", 0).await.expect("guest");
    // Pixel (3, 3): alice's 5 has the higher seq but the lower id.
    store
        .append_events(&[placed(3, 3, 5, alice.id, 1_000, 2)])
        .await
        .expect("append");
    store
        .append_events(&[placed(3, 3, 6, bob.id, 1_001, 1)])
        .await
        .expect("append");
    store
        .append_events(&[placed(4, 3, 7, alice.id, 1_002, 3)])
        .await
        .expect("append");

    let pixel = store.pixel_events(3, 3, 10).await.expect("pixel list");
    let listed: Vec<(u8, i64)> = pixel.iter().map(|e| (e.color, e.user_id)).collect();
    assert_eq!(listed, [(5, alice.id), (6, bob.id)], "newest seq first");
    assert_eq!(pixel[0].username.as_deref(), Some("guest-alice"));
    let mine: Vec<(u32, u32)> = store
        .user_events(alice.id, 10)
        .await
        .expect("user list")
        .iter()
        .map(|e| (e.x, e.y))
        .collect();
    assert_eq!(mine, [(4, 3), (3, 3)]);

    let stats = store.placement_stats(2_000).await.expect("stats");
    assert_eq!(stats.last_minute, 3);
    assert_eq!(
        stats.top_placers,
        [
            (alice.id, Some("guest-alice".to_owned()), 2),
            (bob.id, Some("guest-bob".to_owned()), 1)
        ]
    );
    assert_eq!(stats.banned, 0);

    let details = r#"{"userId": "1", "reason": "test"}"#;
    let plan = store
        .revert(
            bob.id,
            "rollback",
            details,
            &Selection::User {
                user_id: alice.id,
                since_ms: 0,
            },
            3_000,
        )
        .await
        .expect("revert");
    assert_eq!(plan.reverted, 2);
    assert_eq!(
        plan.restores,
        [
            Restore {
                x: 3,
                y: 3,
                color: 6
            },
            Restore {
                x: 4,
                y: 3,
                color: 0
            }
        ],
        "(3, 3) goes back to bob's placement, the one before alice's by seq"
    );
    let reverted: Vec<bool> = store
        .pixel_events(3, 3, 10)
        .await
        .expect("pixel list")
        .iter()
        .map(|e| e.reverted)
        .collect();
    assert_eq!(reverted, [true, false]);

    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).expect("JSON");
    let log = store.audit_log(None, 10).await.expect("audit log");
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].id, log[0].actor_id, log[0].action.as_str()),
        (plan.action_id, bob.id, "rollback")
    );
    assert_eq!(log[0].actor_name.as_deref(), Some("guest-bob"));
    assert_eq!(json(&log[0].details), json(details));
    store
        .update_audit(plan.action_id, r#"{"restored": 2}"#)
        .await
        .expect("update");
    let rollbacks = store
        .audit_of_action("rollback", 3_000, 10)
        .await
        .expect("audit of action");
    assert_eq!(rollbacks.len(), 1);
    assert_eq!(json(&rollbacks[0].details), json(r#"{"restored": 2}"#));
    assert!(store
        .audit_of_action("rollback", 3_001, 10)
        .await
        .expect("audit of action")
        .is_empty());
}

/// Sessions live until they expire, slide, end at logout; settings and administrators are kept.
pub async fn sessions_settings_and_administrators(store: &Store) {
    let guest = store.create_guest("g1", 0).await.expect("guest");
    store
        .create_session("h1", guest.id, 0, 100)
        .await
        .expect("session");
    store
        .create_session("h2", guest.id, 0, 100)
        .await
        .expect("session");
    assert_eq!(
        store.session_user("h1", 99).await.expect("read"),
        Some(guest.clone())
    );
    assert_eq!(store.session_user("h1", 100).await.expect("read"), None);
    store.touch_session("h1", 500).await.expect("touch");
    assert!(store.session_user("h1", 200).await.expect("read").is_some());
    assert_eq!(store.delete_expired_sessions(200).await.expect("purge"), 1);
    store.delete_session("h1").await.expect("logout");
    assert_eq!(store.session_user("h1", 0).await.expect("read"), None);

    assert_eq!(store.stored_cooldown_ms().await.expect("read"), None);
    store.save_cooldown_ms(7_000).await.expect("save");
    store.save_cooldown_ms(9_000).await.expect("save again");
    assert_eq!(store.stored_cooldown_ms().await.expect("read"), Some(9_000));

    let carol = store
        .create_user("Carol", "$hash", false, 0)
        .await
        .expect("user");
    assert!(store.admin_ids().await.expect("admins").is_empty());
    let promoted = store
        .set_admin("cAROL", true)
        .await
        .expect("promote")
        .expect("a registered user");
    assert!(promoted.is_admin);
    assert_eq!(store.admin_ids().await.expect("admins"), [carol.id]);
    assert_eq!(
        store.set_admin(&guest.username, true).await.expect("guest"),
        None,
        "a guest is never an administrator"
    );
    let found: Vec<i64> = store
        .find_users("CA", 10)
        .await
        .expect("find")
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(found, [carol.id]);
}

/// A guest registers in place (same id, its session carries over, only once), and names are
/// unique whatever their letter case, for new users and registering guests alike.
pub async fn guests_register_in_place_and_names_are_unique_in_any_case(store: &Store) {
    let guest = store.create_guest("ab12", 10).await.expect("guest");
    store
        .create_session("s1", guest.id, 0, 100)
        .await
        .expect("session");
    let alice = store
        .register_guest(guest.id, "Alice", "$hash")
        .await
        .expect("register")
        .expect("was a guest");
    assert_eq!((alice.id, alice.is_guest), (guest.id, false));
    assert_eq!(
        store.user(guest.id).await.expect("query"),
        Some(alice.clone())
    );
    assert_eq!(
        store.session_user("s1", 1).await.expect("query"),
        Some(alice.clone()),
        "the guest's session is the user's"
    );
    assert_eq!(
        store
            .register_guest(guest.id, "Alice2", "$hash")
            .await
            .expect("query"),
        None,
        "a registered user is no guest any more"
    );
    for login in ["aLiCe", "ALICE"] {
        let found = store
            .user_login(login)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(
            (found.user, found.password_hash.as_deref()),
            (alice.clone(), Some("$hash"))
        );
    }
    assert!(store.user_login("nobody").await.expect("query").is_none());
    for taken in ["ALICE", "aLiCe"] {
        assert!(matches!(
            store.create_user(taken, "$h", false, 11).await,
            Err(StoreError::UsernameTaken)
        ));
    }
    let other = store.create_guest("cd34", 12).await.expect("guest");
    assert!(matches!(
        store.register_guest(other.id, "alice", "$h").await,
        Err(StoreError::UsernameTaken)
    ));
    let admin = store
        .create_user("root", "$h", true, 13)
        .await
        .expect("create");
    assert!(admin.is_admin && !admin.is_guest);

    store.delete_session("s1").await.expect("delete");
    assert_eq!(store.session_user("s1", 1).await.expect("query"), None);
}
