//! Indexes for the job queue at scale (issue 12), both partial and the same on both backends:
//! `ix_jobs_ready_tenant` lets a claim find each tenant with ready jobs and its oldest due ones
//! without reading other tenants' backlogs (fair claiming however long one tenant's queue is);
//! `ix_jobs_done` lets the retention pass find finished jobs to delete without a table scan.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX ix_jobs_ready_tenant ON jobs (queue, tenant_id, run_at, id) WHERE status = 'ready'",
        )
        .await?;
        db.execute_unprepared("CREATE INDEX ix_jobs_done ON jobs (updated_at) WHERE status = 'done'").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX ix_jobs_done").await?;
        db.execute_unprepared("DROP INDEX ix_jobs_ready_tenant").await?;
        Ok(())
    }
}
