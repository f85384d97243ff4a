//! Per-invocation resource limits that wasmtime does not enforce the way a multi-tenant host needs.
//!
//! wasmtime's own `StoreLimits` caps each linear memory separately, and a component usually has
//! several; [`MemoryBudget`] caps their **sum** (tables included), which is what a tenant's quota
//! means, and remembers the peak for metering.

use wasmtime::ResourceLimiter;

/// A guest tried to grow its memory past the invocation's budget.
#[derive(Debug, thiserror::Error)]
#[error(
    "memory limit exceeded: growing to {requested} bytes would pass the limit of {limit} bytes"
)]
pub struct MemoryLimitExceeded {
    pub limit: usize,
    pub requested: usize,
}

/// A guest made more host calls than the invocation allows.
#[derive(Debug, thiserror::Error)]
#[error("host call limit exceeded: the invocation may make at most {limit} host calls")]
pub struct HostCallLimitExceeded {
    pub limit: u64,
}

/// The invocation ran past its wall-clock deadline while the host was waiting on its behalf.
#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded: the invocation ran longer than {deadline_ms} ms")]
pub struct DeadlineExceeded {
    pub deadline_ms: u64,
}

/// Sums the bytes of every memory and table of one store against one limit.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: usize,
    peak: usize,
}

/// Table elements are pointer-sized in wasmtime.
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

impl MemoryBudget {
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            limit,
            used: 0,
            peak: 0,
        }
    }

    /// The most bytes held at once during the invocation.
    pub fn peak(&self) -> usize {
        self.peak
    }

    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let next = self.used.saturating_sub(current).saturating_add(desired);
        if next > self.limit {
            return Err(MemoryLimitExceeded {
                limit: self.limit,
                requested: next,
            }
            .into());
        }
        self.used = next;
        self.peak = self.peak.max(next);
        Ok(true)
    }
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_sums_memories_and_tracks_peak() {
        let mut budget = MemoryBudget::new(100);
        assert!(budget.memory_growing(0, 60, None).expect("fits"));
        // A second memory: the sum, not each memory, is what counts.
        let error = budget.memory_growing(0, 50, None).expect_err("110 > 100");
        assert!(error.downcast_ref::<MemoryLimitExceeded>().is_some());
        assert!(budget.memory_growing(0, 40, None).expect("fits"));
        assert_eq!(budget.peak(), 100);
    }

    #[test]
    fn tables_count_pointer_sized_elements() {
        let mut budget = MemoryBudget::new(8 * 10);
        assert!(budget.table_growing(0, 10, None).expect("fits"));
        assert!(budget.table_growing(10, 11, None).is_err());
    }
}
