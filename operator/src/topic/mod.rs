//! The `Topic` reconciler: [`plan`](plan::plan) (pure) and [`reconcile`](reconcile::reconcile),
//! and the [`policy`] that keeps Kafka admin requests off topics a Topic resource owns.

pub mod plan;
pub mod policy;
pub mod reconcile;
