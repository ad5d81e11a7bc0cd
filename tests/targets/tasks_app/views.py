from django.http import JsonResponse
from django.tasks import task_backends

from tasks_app import tasks


def enqueue(request, backend: str, name: str) -> JsonResponse:
    """Enqueue tasks.<name> on a backend of settings.TASKS; the result's id and status."""
    arguments = (2, 3) if name == "add" else ()
    result = getattr(tasks, name).using(backend=backend).enqueue(*arguments)
    return JsonResponse({"id": str(result.id), "status": str(result.status)})


async def aenqueue(request, backend: str, name: str) -> JsonResponse:
    """The same through ``aenqueue()``, from an async view."""
    arguments = (2, 3) if name == "add" else ()
    result = await getattr(tasks, name).using(backend=backend).aenqueue(*arguments)
    return JsonResponse({"id": str(result.id), "status": str(result.status)})


def result(request, backend: str, result_id: str) -> JsonResponse:
    """A stored task's result, as the backend reads it back."""
    found = task_backends[backend].get_result(result_id)
    value = found.return_value if found.status == "SUCCESSFUL" else None
    return JsonResponse(
        {"status": str(found.status), "args": found.args, "kwargs": found.kwargs, "return_value": value}
    )
