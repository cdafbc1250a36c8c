//! Which conversations a reader may see, in the terms read models filter on in SQL: the inbox
//! a conversation lives in and its private owner.
//!
//! The access rules themselves are the write side's (the domain's `Directory`); the API turns a
//! viewer's access into a [`Scope`] and hands it to the read models' list and count queries, so
//! that a page of a list is always full or the last one and a count is the length of the list
//! the same viewer gets. Filtering after the query could not promise either.

use rusqlite::types::Value;
use uuid::Uuid;

/// The conversations a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every conversation (admins who see every inbox).
    Everything,
    /// Shared conversations of some inboxes, and private conversations of one owner or of all.
    Limited {
        /// The inboxes whose shared conversations are visible; `None` for every inbox.
        inboxes: Option<Vec<Uuid>>,
        /// The reader: the private conversations they own are visible.
        viewer: Uuid,
        /// Whether every private conversation is visible (admins), not only the reader's own.
        every_private: bool,
    },
}

impl Scope {
    /// An SQL condition on the columns `inbox` (the inbox id as text) and `owner` (the private
    /// owner's id as text, `NULL` for shared conversations) that holds for the conversations in
    /// scope, with its parameters in order (positional `?`); `None` when everything is. The
    /// text depends only on the kind of scope, never on its values, so statements built on it
    /// stay in the connection's statement cache.
    pub fn condition(&self, inbox: &str, owner: &str) -> Option<(String, Vec<Value>)> {
        let Scope::Limited {
            inboxes,
            viewer,
            every_private,
        } = self
        else {
            return None;
        };
        let mut args = Vec::with_capacity(2);
        let shared = match inboxes {
            None => format!("{owner} IS NULL"),
            Some(ids) => {
                let list: Vec<String> = ids.iter().map(|id| format!("\"{id}\"")).collect();
                args.push(Value::Text(format!("[{}]", list.join(","))));
                format!("({owner} IS NULL AND {inbox} IN (SELECT value FROM json_each(?)))")
            }
        };
        let private = if *every_private {
            format!("{owner} IS NOT NULL")
        } else {
            args.push(Value::Text(viewer.to_string()));
            format!("{owner} = ?")
        };
        Some((format!("({shared} OR {private})"), args))
    }

    /// Whether a conversation of `inbox_id` with `private_owner` is in scope: the rule
    /// [`Scope::condition`] states in SQL.
    pub fn admits(&self, inbox_id: Uuid, private_owner: Option<Uuid>) -> bool {
        match self {
            Scope::Everything => true,
            Scope::Limited {
                inboxes,
                viewer,
                every_private,
            } => match private_owner {
                Some(owner) => *every_private || owner == *viewer,
                None => inboxes.as_ref().is_none_or(|ids| ids.contains(&inbox_id)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, params_from_iter};

    use super::*;

    /// The SQL condition and `admits` agree on every combination of inbox and owner.
    #[test]
    fn the_condition_states_the_rule() {
        let conn = Connection::open_in_memory().expect("memory database");
        conn.execute_batch("CREATE TABLE c (inbox TEXT NOT NULL, owner TEXT)")
            .expect("table");
        let (a, b, me, other) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let rows = [
            (a, None),
            (b, None),
            (a, Some(me)),
            (b, Some(other)),
            (a, Some(other)),
        ];
        for (inbox, owner) in rows {
            conn.execute(
                "INSERT INTO c VALUES (?1, ?2)",
                rusqlite::params![inbox.to_string(), owner.map(|o| o.to_string())],
            )
            .expect("insert");
        }
        let scopes = [
            Scope::Everything,
            Scope::Limited {
                inboxes: Some(vec![a]),
                viewer: me,
                every_private: false,
            },
            Scope::Limited {
                inboxes: None,
                viewer: me,
                every_private: false,
            },
            Scope::Limited {
                inboxes: Some(vec![]),
                viewer: me,
                every_private: true,
            },
        ];
        for scope in scopes {
            let (sql, args) = scope
                .condition("inbox", "owner")
                .unwrap_or(("1".to_owned(), Vec::new()));
            let mut stmt = conn
                .prepare(&format!("SELECT COUNT(*) FROM c WHERE {sql}"))
                .expect("prepare");
            let counted: usize = stmt
                .query_row(params_from_iter(args), |row| row.get(0))
                .expect("count");
            let expected = rows
                .iter()
                .filter(|(inbox, owner)| scope.admits(*inbox, *owner))
                .count();
            assert_eq!(counted, expected, "{scope:?}");
        }
    }
}
