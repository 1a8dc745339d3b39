//! `bulkhost:plugin/writes`: a batch endpoint's writes, through the core's one write path for
//! the tenant whose call it serves, so a plugin's write validates, upserts and enters the
//! change feed exactly as a client's `POST` does.

use bulkhost_core::DocRef;
use wasmtime::component::{HasData, Linker};

use crate::bindings::writes::{self, Error, Upserted};

/// Where a batch endpoint plugin's writes go.
pub trait DocumentWriter: Send {
    /// Validates and upserts one document (a JSON object) or a list, atomically.
    fn upsert(
        &mut self,
        collection: &str,
        documents: &serde_json::Value,
    ) -> bulkhost_core::Result<bulkhost_core::Upserted>;
    /// Validates and inserts, refusing the whole write when a key is taken.
    fn create(
        &mut self,
        collection: &str,
        documents: &serde_json::Value,
    ) -> bulkhost_core::Result<bulkhost_core::Upserted>;
    /// Deletes the document whose key is `key`; answers the tenant's version after it.
    fn delete(&mut self, collection: &str, key: &str) -> bulkhost_core::Result<u64>;
}

/// The plain [`DocumentWriter`]: the tenant's documents in a [`bulkhost_core::Store`].
#[derive(Debug, Clone)]
pub struct TenantWriter {
    /// The store written to.
    pub store: bulkhost_core::Store,
    /// The tenant whose documents are written.
    pub tenant: String,
}

impl DocumentWriter for TenantWriter {
    fn upsert(
        &mut self,
        collection: &str,
        documents: &serde_json::Value,
    ) -> bulkhost_core::Result<bulkhost_core::Upserted> {
        self.store
            .documents()
            .upsert(&self.tenant, collection, documents)
    }

    fn create(
        &mut self,
        collection: &str,
        documents: &serde_json::Value,
    ) -> bulkhost_core::Result<bulkhost_core::Upserted> {
        self.store
            .documents()
            .create(&self.tenant, collection, documents)
    }

    fn delete(&mut self, collection: &str, key: &str) -> bulkhost_core::Result<u64> {
        self.store
            .documents()
            .delete(&self.tenant, collection, &DocRef::Code(key.to_string()))
    }
}

/// What the interface writes through: the writer of the call being handled, or nothing
/// outside one.
#[derive(Default)]
pub struct WritesCtx {
    writer: Option<Box<dyn DocumentWriter>>,
}

impl WritesCtx {
    /// Writes through `writer`.
    pub fn new(writer: Option<Box<dyn DocumentWriter>>) -> Self {
        WritesCtx { writer }
    }

    /// The view the generated bindings call.
    pub fn view(&mut self) -> Writes<'_> {
        Writes { ctx: self }
    }
}

/// The interface's implementation over a borrowed [`WritesCtx`].
pub struct Writes<'a> {
    ctx: &'a mut WritesCtx,
}

impl Writes<'_> {
    fn writer(&mut self) -> Result<&mut Box<dyn DocumentWriter>, Error> {
        self.ctx.writer.as_mut().ok_or_else(|| {
            Error::Unavailable("writes are possible only while handling a call".into())
        })
    }
}

struct HasWrites;

impl HasData for HasWrites {
    type Data<'a> = Writes<'a>;
}

/// Adds the interface to `linker`; `get` borrows the context from the store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> Writes<'_>,
) -> wasmtime::Result<()> {
    writes::add_to_linker::<T, HasWrites>(linker, get)
}

fn write_error(e: bulkhost_core::Error) -> Error {
    match e {
        bulkhost_core::Error::UnknownCollection(c) => Error::UnknownCollection(c),
        bulkhost_core::Error::Invalid(errors) => Error::Invalid(errors.to_json().to_string()),
        bulkhost_core::Error::QuotaExceeded(why) => Error::Invalid(
            serde_json::json!({ bulkhost_core::NON_FIELD_ERRORS: [why] }).to_string(),
        ),
        bulkhost_core::Error::NotFound => Error::NotFound,
        bulkhost_core::Error::Exists(key) => Error::Exists(key),
        other => Error::Unavailable(other.to_string()),
    }
}

/// The documents of a write: a JSON object or a list of them.
fn documents_of(text: &str) -> Result<serde_json::Value, Error> {
    let documents: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::InvalidJson(e.to_string()))?;
    if documents.is_object() || documents.is_array() {
        Ok(documents)
    } else {
        Err(Error::InvalidJson(
            "expected a JSON object or a list of objects".into(),
        ))
    }
}

fn upserted(done: bulkhost_core::Upserted) -> Upserted {
    Upserted {
        updated: done.updated,
        inserted: done.inserted,
        version: done.version,
    }
}

impl writes::Host for Writes<'_> {
    fn upsert(&mut self, collection: String, documents: String) -> Result<Upserted, Error> {
        let documents = documents_of(&documents)?;
        let done = self.writer()?.upsert(&collection, &documents);
        done.map(upserted).map_err(write_error)
    }

    fn create(&mut self, collection: String, documents: String) -> Result<Upserted, Error> {
        let documents = documents_of(&documents)?;
        let done = self.writer()?.create(&collection, &documents);
        done.map(upserted).map_err(write_error)
    }

    fn delete(&mut self, collection: String, key: String) -> Result<u64, Error> {
        self.writer()?
            .delete(&collection, &key)
            .map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::writes::Host;

    #[test]
    fn a_write_that_is_not_objects_is_refused_before_the_writer() {
        let mut ctx = WritesCtx::default();
        let mut view = ctx.view();
        assert!(matches!(
            view.upsert("shops".into(), "42".into()),
            Err(Error::InvalidJson(_))
        ));
        assert!(matches!(
            view.upsert("shops".into(), "{}".into()),
            Err(Error::Unavailable(_))
        ));
    }
}
