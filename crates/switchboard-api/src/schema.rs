//! The schema: its three roots, its limits, and its SDL.
//!
//! Limits: selection depth and complexity (async-graphql's validation), aliases per document
//! (the [`AliasLimit`] extension below), page sizes (each connection), body size and batches
//! (the HTTP layer refuses batched requests and large bodies).

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Positioned, Schema, ServerError, ServerResult, Variables};

use crate::mutation::Mutation;
use crate::query::Query;
use crate::state::ApiState;
use crate::subscription::Subscription;

/// The Switchboard schema.
pub type SwitchboardSchema = Schema<Query, Mutation, Subscription>;

/// The schema serving `state`.
pub fn build(state: ApiState) -> SwitchboardSchema {
    let limits = state.inner().limits.clone();
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .limit_recursive_depth(64)
        .extension(AliasLimit(limits.max_aliases))
        .extension(ParseCache::default())
        .data(state)
        .finish()
}

/// The schema's SDL, as committed in `crates/switchboard-api/schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .finish()
        .sdl()
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
        let mut aliases = 0;
        for (_, operation) in document.operations.iter() {
            aliases += count_aliases(&operation.node.selection_set);
        }
        for fragment in document.fragments.values() {
            aliases += count_aliases(&fragment.node.selection_set);
        }
        if aliases > self.0 {
            let mut error = ServerError::new(
                format!(
                    "the document has {aliases} aliases; at most {} are allowed",
                    self.0
                ),
                None,
            );
            let mut ext = async_graphql::ErrorExtensionValues::default();
            ext.set("code", "BAD_USER_INPUT");
            error.extensions = Some(ext);
            return Err(error);
        }
        Ok(document)
    }
}

/// Most documents [`ParseCache`] keeps; when full it starts afresh (clients send a handful of
/// distinct documents, with variables, so the cache stays warm).
const PARSE_CACHE_ENTRIES: usize = 512;

/// Longest query text [`ParseCache`] keeps.
const PARSE_CACHE_MAX_QUERY: usize = 16 * 1024;

/// Keeps parsed documents by query text: a UI sends the same few documents with different
/// variables, and parsing is a large share of a small query's cost. Validation and the alias
/// limit still run on every request (the alias limit is registered before this extension, so
/// it wraps it).
#[derive(Debug, Clone, Default)]
pub struct ParseCache(
    Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<ExecutableDocument>>>>,
);

impl ExtensionFactory for ParseCache {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for ParseCache {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let cached = self
            .0
            .lock()
            .ok()
            .and_then(|cache| cache.get(query).cloned());
        if let Some(document) = cached {
            return Ok(ExecutableDocument::clone(&document));
        }
        let document = next.run(ctx, query, variables).await?;
        if query.len() <= PARSE_CACHE_MAX_QUERY
            && let Ok(mut cache) = self.0.lock()
        {
            if cache.len() >= PARSE_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(query.to_owned(), Arc::new(document.clone()));
        }
        Ok(document)
    }
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
