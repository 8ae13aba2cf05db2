"""Staff compliance on every request of a member of staff.

Listed in MIDDLEWARE after AuthenticationMiddleware; the work happens in process_view, once every
middleware (sessions, messages, the second factor) has set the request up.

- request.user gets a per-request cache, so staff.compliance reads the profile once however
  often Case.visible_to asks during the request.
- Someone who no longer qualifies for child-safety work (CSAE training expired, background
  check not enhanced, left CSAE duties) loses the child-safety queue on this request already
  (Case.visible_to), and the child-safety cases they still hold go back to the queue here,
  with a message saying so (once: afterwards they hold none).
"""

from django.contrib import messages

from . import actions, compliance


class StaffComplianceMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return None
        compliance.enable_request_cache(user)
        status, released = actions.enforce_compliance(user)
        if released:
            cases = ", ".join(f"#{pk}" for pk in released)
            messages.warning(
                request,
                f"You no longer have access to child-safety cases ({status.reason}): "
                f"the child-safety cases you held went back to the queue ({cases}).",
                fail_silently=True,
            )
        return None
