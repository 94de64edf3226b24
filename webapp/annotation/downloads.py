"""A frozen snapshot as a download, for the snapshot page and the REST API alike: TRL preference rows
streamed as JSONL, or a zip of one export folder (hf, llamafactory, axolotl) that the worker wrote
after the freeze (or that is written now). The caller has checked the role and the format."""
import io
import json
import zipfile

from django.http import FileResponse, StreamingHttpResponse

from webapp.annotation import exports


def snapshot_download_response(project, snapshot, fmt: str):
    """"jsonl" (or "trl"): streamed rows; any name in exports.ZIPPED: a zip named after the snapshot."""
    stem = f"{project.slug}-{snapshot.name}-{snapshot.content_hash[:12]}"
    if fmt in ("trl", "jsonl"):
        lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in exports.trl_rows(snapshot))
        response = StreamingHttpResponse(lines, content_type="application/jsonl")
        response["Content-Disposition"] = f'attachment; filename="{stem}.jsonl"'
        return response
    folder = exports.snapshot_export(snapshot) / fmt
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{stem}/{path.relative_to(folder)}")
    buffer.seek(0)
    return FileResponse(buffer, as_attachment=True, filename=f"{stem}-{fmt}.zip")
