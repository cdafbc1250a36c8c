//! The schema: its three roots, its limits, and its SDL.
//!
//! Limits: selection depth and complexity (async-graphql's validation), aliases per document,
//! page sizes (each connection), body size and batches (the HTTP layer refuses batched requests
//! and large bodies).
//!
//! Two instances of the one schema serve requests. HTTP requests run on one **without
//! extensions**: any extension sends every field through async-graphql's extension chain, which
//! costs more than the field itself for small fields. The HTTP handler parses documents through
//! [`ParsedDocuments`] (a UI sends the same few documents with different variables) and checks
//! their aliases itself. Subscriptions run on an instance with the [`AliasLimit`] extension,
//! since their documents arrive inside the WebSocket protocol.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Positioned, Schema, SchemaBuilder, ServerError, ServerResult, Variables};

use crate::mutation::Mutation;
use crate::query::Query;
use crate::state::ApiState;
use crate::subscription::Subscription;

/// The Switchboard schema.
pub type SwitchboardSchema = Schema<Query, Mutation, Subscription>;

fn builder(state: &ApiState) -> SchemaBuilder<Query, Mutation, Subscription> {
    let limits = &state.inner().limits;
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(64)
        .data(state.clone())
}

/// The schema serving HTTP requests: no extensions; the caller checks aliases (see
/// [`ParsedDocuments::parse`]).
pub fn build(state: ApiState) -> SwitchboardSchema {
    builder(&state).finish()
}

/// The schema serving subscriptions, with the alias limit as an extension.
pub fn build_for_subscriptions(state: ApiState) -> SwitchboardSchema {
    let max_aliases = state.inner().limits.max_aliases;
    builder(&state).extension(AliasLimit(max_aliases)).finish()
}

/// The schema's SDL, as committed in `crates/switchboard-api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .finish()
        .sdl()
}

/// Most documents [`ParsedDocuments`] keeps; when full it starts afresh (clients send a handful
/// of distinct documents, with variables, so the cache stays warm).
const PARSED_ENTRIES: usize = 512;

/// Longest query text [`ParsedDocuments`] keeps.
const PARSED_MAX_QUERY: usize = 16 * 1024;

/// A parsed document and how many aliases it has.
type Parsed = (Arc<ExecutableDocument>, usize);

/// Parsed documents by query text, with their alias counts.
#[derive(Debug, Clone, Default)]
pub struct ParsedDocuments(Arc<Mutex<HashMap<String, Parsed>>>);

impl ParsedDocuments {
    /// The document of `query`, refused with BAD_USER_INPUT when it has more than
    /// `max_aliases` aliases; `None` when it does not parse (the schema then reports the
    /// syntax error itself).
    pub fn parse(
        &self,
        query: &str,
        max_aliases: usize,
    ) -> Result<Option<ExecutableDocument>, ServerError> {
        let cached = self
            .0
            .lock()
            .ok()
            .and_then(|cache| cache.get(query).cloned());
        let (document, aliases) = match cached {
            Some(found) => found,
            None => {
                let Ok(document) = async_graphql::parser::parse_query(query) else {
                    return Ok(None);
                };
                let aliases = aliases_in(&document);
                let document = Arc::new(document);
                if query.len() <= PARSED_MAX_QUERY
                    && let Ok(mut cache) = self.0.lock()
                {
                    if cache.len() >= PARSED_ENTRIES {
                        cache.clear();
                    }
                    cache.insert(query.to_owned(), (document.clone(), aliases));
                }
                (document, aliases)
            }
        };
        check_aliases(aliases, max_aliases)?;
        Ok(Some(ExecutableDocument::clone(&document)))
    }
}

/// Refuses documents with more than `.0` aliased fields: aliases let one small request ask for
/// the same expensive field many times, which depth and complexity alone price too low.
#[derive(Debug, Clone, Copy)]
pub struct AliasLimit(pub usize);

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for AliasLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check_aliases(aliases_in(&document), self.0)?;
        Ok(document)
    }
}

fn check_aliases(aliases: usize, max_aliases: usize) -> ServerResult<()> {
    if aliases <= max_aliases {
        return Ok(());
    }
    let mut error = ServerError::new(
        format!("the document has {aliases} aliases; at most {max_aliases} are allowed"),
        None,
    );
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", "BAD_USER_INPUT");
    error.extensions = Some(ext);
    Err(error)
}

fn aliases_in(document: &ExecutableDocument) -> usize {
    let operations: usize = document
        .operations
        .iter()
        .map(|(_, operation)| count_aliases(&operation.node.selection_set))
        .sum();
    let fragments: usize = document
        .fragments
        .values()
        .map(|fragment| count_aliases(&fragment.node.selection_set))
        .sum();
    operations + fragments
}

fn count_aliases(set: &Positioned<SelectionSet>) -> usize {
    set.node
        .items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some()) + count_aliases(&field.node.selection_set)
            }
            Selection::InlineFragment(fragment) => count_aliases(&fragment.node.selection_set),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}
