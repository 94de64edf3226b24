"""Maintained counters (issue 23): each annotator's progress per project and the project's
comparison counts by status (16 shards), kept by statement-level PostgreSQL triggers in the same
transaction as every write that changes them (judgements, skips, comparisons: inserted, deleted,
status changed), whoever writes (the API, an import's bulk insert, COPY, an adjudication, a
cascade). Statement-level with transition tables, so a bulk insert of 100k rows costs one grouped
upsert, not 100k. `annotation_counters_rebuild(project)` recounts a project from scratch; this
migration runs it for every existing project (the backfill), and the tests compare it with the
maintained rows after racing writes.

Lock order, so racing writers never deadlock: a comparison row, then the progress rows (annotator
id order, taken up front by the hot path's writers, see services._PROGRESS_LOCK), then a counter
shard. A status change touches the progress rows of everyone who judged or skipped that comparison."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Deltas in, counters out. p_n is +1 for a new row and -1 for a removed one.
# A removal whose counter row is gone (a project being deleted: Django deletes its counters and its
# comparisons in either order) changes nothing rather than inserting a negative row for it.
FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION annotation_judgements_apply(p_cmp bigint[], p_ann bigint[], p_n int[]) RETURNS void
LANGUAGE sql VOLATILE AS $fn$
  INSERT INTO annotation_annotatorprogress (project_id, annotator_id, judged, judged_open, skipped_open)
  SELECT c.project_id, d.ann, sum(d.n), coalesce(sum(d.n) FILTER (WHERE c.status = 'open'), 0), 0
    FROM unnest(p_cmp, p_ann, p_n) AS d(cmp, ann, n) JOIN annotation_comparison c ON c.id = d.cmp
   WHERE d.ann IS NOT NULL
   GROUP BY 1, 2 HAVING max(d.n) > 0 OR EXISTS (SELECT 1 FROM annotation_annotatorprogress p WHERE p.project_id = c.project_id AND p.annotator_id = d.ann)
   ORDER BY 1, 2
  ON CONFLICT (project_id, annotator_id) DO UPDATE
    SET judged = annotation_annotatorprogress.judged + EXCLUDED.judged,
        judged_open = annotation_annotatorprogress.judged_open + EXCLUDED.judged_open;
  INSERT INTO annotation_projectcounter (project_id, shard, pending, done, disputed, judgements)
  SELECT c.project_id, x.shard, 0, 0, 0, sum(d.n)
    FROM unnest(p_cmp, p_n) AS d(cmp, n) JOIN annotation_comparison c ON c.id = d.cmp, LATERAL (SELECT c.id % 16 AS shard) x
   GROUP BY 1, 2 HAVING max(d.n) > 0 OR EXISTS (SELECT 1 FROM annotation_projectcounter q WHERE q.project_id = c.project_id AND q.shard = x.shard)
   ORDER BY 1, 2
  ON CONFLICT (project_id, shard) DO UPDATE SET judgements = annotation_projectcounter.judgements + EXCLUDED.judgements;
$fn$;

CREATE OR REPLACE FUNCTION annotation_judgement_counts() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM annotation_judgements_apply(array_agg(comparison_id), array_agg(annotator_id), array_agg(1)) FROM new_rows HAVING count(*) > 0;
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM annotation_judgements_apply(array_agg(comparison_id), array_agg(annotator_id), array_agg(-1)) FROM old_rows HAVING count(*) > 0;
  ELSE  -- an update that moves a judgement to another comparison or person: out of the old, into the new
    PERFORM annotation_judgements_apply(array_agg(cmp), array_agg(ann), array_agg(n)) FROM (
      SELECT o.comparison_id AS cmp, o.annotator_id AS ann, -1 AS n FROM old_rows o JOIN new_rows w ON w.id = o.id
       WHERE (o.comparison_id, o.annotator_id) IS DISTINCT FROM (w.comparison_id, w.annotator_id)
      UNION ALL
      SELECT w.comparison_id, w.annotator_id, 1 FROM old_rows o JOIN new_rows w ON w.id = o.id
       WHERE (o.comparison_id, o.annotator_id) IS DISTINCT FROM (w.comparison_id, w.annotator_id)) moved HAVING count(*) > 0;
  END IF;
  RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION annotation_skips_apply(p_cmp bigint[], p_ann bigint[], p_n int[]) RETURNS void
LANGUAGE sql VOLATILE AS $fn$
  INSERT INTO annotation_annotatorprogress (project_id, annotator_id, judged, judged_open, skipped_open)
  SELECT c.project_id, d.ann, 0, 0, sum(d.n)
    FROM unnest(p_cmp, p_ann, p_n) AS d(cmp, ann, n) JOIN annotation_comparison c ON c.id = d.cmp AND c.status = 'open'
   GROUP BY 1, 2 HAVING max(d.n) > 0 OR EXISTS (SELECT 1 FROM annotation_annotatorprogress p WHERE p.project_id = c.project_id AND p.annotator_id = d.ann)
   ORDER BY 1, 2
  ON CONFLICT (project_id, annotator_id) DO UPDATE
    SET skipped_open = annotation_annotatorprogress.skipped_open + EXCLUDED.skipped_open;
$fn$;

CREATE OR REPLACE FUNCTION annotation_skip_counts() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM annotation_skips_apply(array_agg(comparison_id), array_agg(annotator_id), array_agg(1)) FROM new_rows HAVING count(*) > 0;
  ELSE
    PERFORM annotation_skips_apply(array_agg(comparison_id), array_agg(annotator_id), array_agg(-1)) FROM old_rows HAVING count(*) > 0;
  END IF;
  RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION annotation_comparisons_apply(p_project bigint[], p_cmp bigint[], p_status text[], p_n int[]) RETURNS void
LANGUAGE sql VOLATILE AS $fn$
  INSERT INTO annotation_projectcounter (project_id, shard, pending, done, disputed, judgements)
  SELECT d.project, x.shard, coalesce(sum(d.n) FILTER (WHERE d.status = 'open'), 0),
         coalesce(sum(d.n) FILTER (WHERE d.status IN ('complete', 'adjudicated')), 0),
         coalesce(sum(d.n) FILTER (WHERE d.status = 'disputed'), 0), 0
    FROM unnest(p_project, p_cmp, p_status, p_n) AS d(project, cmp, status, n), LATERAL (SELECT d.cmp % 16 AS shard) x
   GROUP BY 1, 2 HAVING max(d.n) > 0 OR EXISTS (SELECT 1 FROM annotation_projectcounter q WHERE q.project_id = d.project AND q.shard = x.shard)
   ORDER BY 1, 2
  ON CONFLICT (project_id, shard) DO UPDATE
    SET pending = annotation_projectcounter.pending + EXCLUDED.pending,
        done = annotation_projectcounter.done + EXCLUDED.done,
        disputed = annotation_projectcounter.disputed + EXCLUDED.disputed;
$fn$;

CREATE OR REPLACE FUNCTION annotation_comparison_counts() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM annotation_comparisons_apply(array_agg(project_id), array_agg(id), array_agg(status::text), array_agg(1))
       FROM new_rows HAVING count(*) > 0;
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM annotation_comparisons_apply(array_agg(project_id), array_agg(id), array_agg(status::text), array_agg(-1))
       FROM old_rows HAVING count(*) > 0;
  ELSE
    -- Whoever judged or skipped a comparison that opens or closes: their open counts follow it.
    INSERT INTO annotation_annotatorprogress (project_id, annotator_id, judged, judged_open, skipped_open)
    SELECT x.project_id, x.annotator_id, 0, sum(x.j), sum(x.s) FROM (
      SELECT w.project_id, j.annotator_id, CASE WHEN w.status = 'open' THEN 1 ELSE -1 END AS j, 0 AS s
        FROM old_rows o JOIN new_rows w ON w.id = o.id JOIN annotation_judgement j ON j.comparison_id = w.id
       WHERE (o.status = 'open') <> (w.status = 'open') AND j.annotator_id IS NOT NULL
      UNION ALL
      SELECT w.project_id, s.annotator_id, 0, CASE WHEN w.status = 'open' THEN 1 ELSE -1 END
        FROM old_rows o JOIN new_rows w ON w.id = o.id JOIN annotation_skip s ON s.comparison_id = w.id
       WHERE (o.status = 'open') <> (w.status = 'open')) x
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (project_id, annotator_id) DO UPDATE
      SET judged_open = annotation_annotatorprogress.judged_open + EXCLUDED.judged_open,
          skipped_open = annotation_annotatorprogress.skipped_open + EXCLUDED.skipped_open;
    PERFORM annotation_comparisons_apply(array_agg(p), array_agg(i), array_agg(st), array_agg(n)) FROM (
      SELECT o.project_id AS p, o.id AS i, o.status::text AS st, -1 AS n FROM old_rows o JOIN new_rows w ON w.id = o.id
       WHERE (o.status, o.project_id) IS DISTINCT FROM (w.status, w.project_id)
      UNION ALL
      SELECT w.project_id, w.id, w.status::text, 1 FROM old_rows o JOIN new_rows w ON w.id = o.id
       WHERE (o.status, o.project_id) IS DISTINCT FROM (w.status, w.project_id)) changed HAVING count(*) > 0;
  END IF;
  RETURN NULL;
END $fn$;

CREATE TRIGGER annotation_judgement_counts_ins AFTER INSERT ON annotation_judgement
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_judgement_counts();
CREATE TRIGGER annotation_judgement_counts_del AFTER DELETE ON annotation_judgement
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_judgement_counts();
CREATE TRIGGER annotation_judgement_counts_upd AFTER UPDATE ON annotation_judgement
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_judgement_counts();
CREATE TRIGGER annotation_skip_counts_ins AFTER INSERT ON annotation_skip
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_skip_counts();
CREATE TRIGGER annotation_skip_counts_del AFTER DELETE ON annotation_skip
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_skip_counts();
CREATE TRIGGER annotation_comparison_counts_ins AFTER INSERT ON annotation_comparison
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_comparison_counts();
CREATE TRIGGER annotation_comparison_counts_del AFTER DELETE ON annotation_comparison
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_comparison_counts();
CREATE TRIGGER annotation_comparison_counts_upd AFTER UPDATE ON annotation_comparison
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION annotation_comparison_counts();

-- A recount from scratch: the backfill, the bench after COPY, and the tests' reference.
CREATE OR REPLACE FUNCTION annotation_counters_rebuild(p_project bigint) RETURNS void LANGUAGE sql VOLATILE AS $fn$
  DELETE FROM annotation_annotatorprogress WHERE project_id = p_project;
  DELETE FROM annotation_projectcounter WHERE project_id = p_project;
  INSERT INTO annotation_annotatorprogress (project_id, annotator_id, judged, judged_open, skipped_open)
  SELECT p_project, annotator_id, sum(j), sum(jo), sum(so) FROM (
    SELECT j.annotator_id, 1 AS j, (c.status = 'open')::int AS jo, 0 AS so
      FROM annotation_judgement j JOIN annotation_comparison c ON c.id = j.comparison_id
     WHERE c.project_id = p_project AND j.annotator_id IS NOT NULL
    UNION ALL
    SELECT s.annotator_id, 0, 0, (c.status = 'open')::int
      FROM annotation_skip s JOIN annotation_comparison c ON c.id = s.comparison_id WHERE c.project_id = p_project) x
   GROUP BY annotator_id;
  INSERT INTO annotation_projectcounter (project_id, shard, pending, done, disputed, judgements)
  SELECT p_project, s.shard, coalesce(c.pending, 0), coalesce(c.done, 0), coalesce(c.disputed, 0), coalesce(j.n, 0)
    FROM generate_series(0, 15) AS s(shard)
    LEFT JOIN (SELECT id % 16 AS shard, count(*) FILTER (WHERE status = 'open') AS pending,
                      count(*) FILTER (WHERE status IN ('complete', 'adjudicated')) AS done,
                      count(*) FILTER (WHERE status = 'disputed') AS disputed
                 FROM annotation_comparison WHERE project_id = p_project GROUP BY 1) c ON c.shard = s.shard
    LEFT JOIN (SELECT j.comparison_id % 16 AS shard, count(*) AS n FROM annotation_judgement j
                 JOIN annotation_comparison c ON c.id = j.comparison_id WHERE c.project_id = p_project GROUP BY 1) j ON j.shard = s.shard;
$fn$;

SELECT annotation_counters_rebuild(id) FROM projects_project;
"""

REVERSE = r"""
DROP TRIGGER IF EXISTS annotation_judgement_counts_ins ON annotation_judgement;
DROP TRIGGER IF EXISTS annotation_judgement_counts_del ON annotation_judgement;
DROP TRIGGER IF EXISTS annotation_judgement_counts_upd ON annotation_judgement;
DROP TRIGGER IF EXISTS annotation_skip_counts_ins ON annotation_skip;
DROP TRIGGER IF EXISTS annotation_skip_counts_del ON annotation_skip;
DROP TRIGGER IF EXISTS annotation_comparison_counts_ins ON annotation_comparison;
DROP TRIGGER IF EXISTS annotation_comparison_counts_del ON annotation_comparison;
DROP TRIGGER IF EXISTS annotation_comparison_counts_upd ON annotation_comparison;
DROP FUNCTION IF EXISTS annotation_counters_rebuild(bigint);
DROP FUNCTION IF EXISTS annotation_comparison_counts();
DROP FUNCTION IF EXISTS annotation_comparisons_apply(bigint[], bigint[], text[], int[]);
DROP FUNCTION IF EXISTS annotation_skip_counts();
DROP FUNCTION IF EXISTS annotation_skips_apply(bigint[], bigint[], int[]);
DROP FUNCTION IF EXISTS annotation_judgement_counts();
DROP FUNCTION IF EXISTS annotation_judgements_apply(bigint[], bigint[], int[]);
"""


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0011_preference_import_and_build_key'),
        ('projects', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AnnotatorProgress',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('judged', models.IntegerField(default=0)),
                ('judged_open', models.IntegerField(default=0)),
                ('skipped_open', models.IntegerField(default=0)),
                ('annotator', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('project', 'annotator'), name='annotatorprogress_unique')],
            },
        ),
        migrations.CreateModel(
            name='ProjectCounter',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('shard', models.SmallIntegerField()),
                ('pending', models.BigIntegerField(default=0)),
                ('done', models.BigIntegerField(default=0)),
                ('disputed', models.BigIntegerField(default=0)),
                ('judgements', models.BigIntegerField(default=0)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='projects.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('project', 'shard'), name='projectcounter_unique_shard')],
            },
        ),
        migrations.RunSQL(FUNCTIONS, reverse_sql=REVERSE),
    ]
