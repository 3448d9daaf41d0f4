//! Tags: set on create, replaced on update, bounded, refused where they do
//! not apply, and served from an index that deletes and restores keep exact.

use crate::support::*;
use alcor_state_machine::limits::{TAGS_MAX, TAG_LEN_MAX};
use alcor_state_machine::{Command, Id, Kind, Rejection, State, TagFilter, Tags};

fn tags(names: &[&str]) -> Tags {
    names.iter().map(|t| t.to_string()).collect()
}

fn tagged(tags_of: &[&str], command: Command) -> Command {
    Command::WithTags {
        tags: tags(tags_of),
        command: Box::new(command),
    }
}

fn candidates(state: &State, kind: Kind, filter: &TagFilter) -> Vec<Id> {
    state
        .tag_candidates(kind, filter)
        .map(|ids| ids.collect())
        .unwrap_or_default()
}

fn rename_vpc(n: u128) -> Command {
    Command::UpdateVpc {
        id: Id(n),
        name: Some("renamed".into()),
        mtu: None,
        admin_state_up: None,
        expected_revision: None,
    }
}

#[test]
fn tags_are_set_on_create_replaced_on_update_and_served_from_the_index() {
    let mut w = World::new();
    w.ok(tagged(&["blue", "prod"], vpc(1, None)));
    w.ok(tagged(&["blue"], vpc(2, None)));
    w.ok(vpc(3, None));
    assert_eq!(
        w.state.vpc(&Id(1)).unwrap().meta.tags,
        tags(&["blue", "prod"])
    );
    let all_blue = TagFilter {
        all: tags(&["blue"]),
        ..TagFilter::default()
    };
    assert_eq!(
        candidates(&w.state, Kind::Vpc, &all_blue),
        vec![Id(1), Id(2)]
    );
    assert!(candidates(&w.state, Kind::Port, &all_blue).is_empty());
    // A plain update keeps the tags; a tagged one replaces them.
    w.ok(rename_vpc(1));
    assert_eq!(
        w.state.vpc(&Id(1)).unwrap().meta.tags,
        tags(&["blue", "prod"])
    );
    let before = w.state.vpc(&Id(2)).unwrap().meta.revision;
    w.ok(tagged(&["green"], rename_vpc(2)));
    let vpc2 = w.state.vpc(&Id(2)).unwrap();
    assert_eq!(vpc2.meta.tags, tags(&["green"]));
    assert!(vpc2.meta.revision > before);
    assert_eq!(candidates(&w.state, Kind::Vpc, &all_blue), vec![Id(1)]);
    let any = TagFilter {
        any: tags(&["green", "prod"]),
        not_any: tags(&["nope"]),
        ..TagFilter::default()
    };
    assert_eq!(candidates(&w.state, Kind::Vpc, &any), vec![Id(1), Id(2)]);
    let not_all = TagFilter {
        not_all: tags(&["blue", "prod"]),
        ..TagFilter::default()
    };
    assert!(!not_all.matches(&w.state.vpc(&Id(1)).unwrap().meta.tags));
    assert!(not_all.matches(&w.state.vpc(&Id(2)).unwrap().meta.tags));
    // Clearing with the empty set; deleting drops the index entries.
    w.ok(tagged(&[], rename_vpc(1)));
    assert!(w.state.vpc(&Id(1)).unwrap().meta.tags.is_empty());
    w.ok(Command::DeleteVpc {
        id: Id(2),
        expected_revision: None,
    });
    assert!(w.state.tag_index_is_consistent());
    let green = TagFilter {
        all: tags(&["green"]),
        ..TagFilter::default()
    };
    assert!(candidates(&w.state, Kind::Vpc, &green).is_empty());
    let restored = State::restore(&w.state.snapshot()).unwrap();
    assert!(restored.tag_index_is_consistent());
}

#[test]
fn bad_tags_and_untaggable_commands_are_refused_and_change_nothing() {
    let mut w = World::new();
    w.ok(vpc(1, None));
    let too_many: Vec<String> = (0..=TAGS_MAX).map(|n| format!("t{n}")).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let long = "x".repeat(TAG_LEN_MAX + 1);
    for bad in [
        refs,
        vec![long.as_str()],
        vec!["a,b"],
        vec![""],
        vec!["tab\t"],
    ] {
        let e = w.reject(tagged(&bad, rename_vpc(1)));
        assert!(
            matches!(&e, Rejection::InvalidField { field, .. } if field == "tags"),
            "{e:?}"
        );
    }
    let e = w.reject(tagged(&["x"], host("h1", "172.16.0.1")));
    assert!(matches!(e, Rejection::InvalidField { .. }), "{e:?}");
    // A rejected wrapped command leaves the tags alone too.
    let e = w.reject(tagged(
        &["x"],
        Command::UpdateVpc {
            id: Id(1),
            name: None,
            mtu: None,
            admin_state_up: None,
            expected_revision: Some(999),
        },
    ));
    assert!(matches!(e, Rejection::StaleRevision { .. }), "{e:?}");
    assert!(w.state.vpc(&Id(1)).unwrap().meta.tags.is_empty());
}
