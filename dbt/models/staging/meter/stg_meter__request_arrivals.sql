-- Every insert of a request row, duplicates included: what incremental models watch to find changed days.
select
    workspace_id,
    request_uid,
    toDate(started_at) as day,
    ingested_at
from {{ source('meter', 'requests') }}
