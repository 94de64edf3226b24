"""The next-item lease as one PostgreSQL function, so the annotation API's hot path asks the
database once instead of six times (BEGIN, SET LOCAL, held-lease renewal, candidate, recount-and-
lease, COMMIT). Same statements, same order, same locks as the Python loop it replaces: a VOLATILE
PL/pgSQL function takes a fresh snapshot for every statement it runs, so the recount after the
row lock still sees every lease committed before the lock was granted (READ COMMITTED)."""
from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION annotation_next_lease(p_project bigint, p_me bigint, p_lease interval) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
  v_got bigint;
  v_candidate bigint;
BEGIN
  -- A lease is disposable: no need to wait for the disk at commit.
  PERFORM set_config('synchronous_commit', 'off', true);
  -- Their own live lease (a reload or an undo shows the same item), renewed. The comparison row is
  -- locked first, as every lease writer does, so a lease that another annotator's recount has just
  -- found expired is not brought back to life behind its back.
  WITH held AS (
    SELECT c.id FROM annotation_comparison c JOIN annotation_assignment a ON a.comparison_id = c.id
     WHERE a.annotator_id = p_me AND a.expires_at > clock_timestamp() AND c.project_id = p_project
       AND c.status = 'open'
       AND NOT EXISTS (SELECT 1 FROM annotation_judgement mj WHERE mj.comparison_id = c.id AND mj.annotator_id = p_me)
       AND NOT EXISTS (SELECT 1 FROM annotation_skip ms WHERE ms.comparison_id = c.id AND ms.annotator_id = p_me)
     ORDER BY c.priority DESC, c.id LIMIT 1 FOR UPDATE OF c)
  UPDATE annotation_assignment a SET expires_at = clock_timestamp() + p_lease FROM held
   WHERE a.comparison_id = held.id AND a.annotator_id = p_me AND a.expires_at > clock_timestamp()
  RETURNING a.comparison_id INTO v_got;
  IF v_got IS NOT NULL THEN
    RETURN v_got;
  END IF;
  FOR attempt IN 1..20 LOOP  -- a failed recount means someone else took the slot meanwhile: take the next one
    -- The best open comparison with a free slot (human judgements, adjudications aside, plus other
    -- people's live leases: the slots already taken), walking the queue index; rows being handed
    -- out right now are skipped. Its snapshot predates the lock, so the slot is counted again below.
    SELECT c.id INTO v_candidate FROM annotation_comparison c
     WHERE c.project_id = p_project AND c.status = 'open'
       AND NOT EXISTS (SELECT 1 FROM annotation_judgement mj WHERE mj.comparison_id = c.id AND mj.annotator_id = p_me)
       AND NOT EXISTS (SELECT 1 FROM annotation_skip ms WHERE ms.comparison_id = c.id AND ms.annotator_id = p_me)
       AND (SELECT COUNT(*) FROM annotation_judgement hj WHERE hj.comparison_id = c.id AND hj.source = 'human' AND NOT hj.is_adjudication)
         + (SELECT COUNT(*) FROM annotation_assignment la WHERE la.comparison_id = c.id AND la.expires_at > clock_timestamp()
                                                           AND la.annotator_id <> p_me) < c.required_annotations
     ORDER BY c.priority DESC, c.id LIMIT 1 FOR UPDATE OF c SKIP LOCKED;
    IF v_candidate IS NULL THEN
      RETURN NULL;
    END IF;
    -- Recount under the row lock, in a new statement (a new snapshot: it sees every lease committed
    -- before the lock was granted), and lease only if a slot is still free.
    INSERT INTO annotation_assignment (comparison_id, annotator_id, expires_at, created_at)
    SELECT c.id, p_me, clock_timestamp() + p_lease, clock_timestamp() FROM annotation_comparison c
     WHERE c.id = v_candidate AND c.status = 'open'
       AND (SELECT COUNT(*) FROM annotation_judgement hj WHERE hj.comparison_id = c.id AND hj.source = 'human' AND NOT hj.is_adjudication)
         + (SELECT COUNT(*) FROM annotation_assignment la WHERE la.comparison_id = c.id AND la.expires_at > clock_timestamp()
                                                           AND la.annotator_id <> p_me) < c.required_annotations
    ON CONFLICT (comparison_id, annotator_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
    RETURNING comparison_id INTO v_got;
    IF v_got IS NOT NULL THEN
      RETURN v_got;
    END IF;
    v_candidate := NULL;
  END LOOP;
  RETURN NULL;
END
$fn$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0008_job_lifecycle'),
    ]

    operations = [
        migrations.RunSQL(FUNCTION, reverse_sql="DROP FUNCTION IF EXISTS annotation_next_lease(bigint, bigint, interval);"),
    ]
