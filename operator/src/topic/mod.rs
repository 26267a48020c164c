//! The `Topic` reconciler: [`plan`](plan::plan) (pure) and [`reconcile`](reconcile::reconcile).

pub mod plan;
pub mod reconcile;
