"""The account page for personal API tokens: create one (shown once, right after), list them with
their scope and last use, revoke. Any signed-in user; a token only ever reaches what its user can."""
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from webapp.api import tokens
from webapp.projects.models import Project
from webapp.projects.selectors import projects_for


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'training notebook'.")
    all_projects = forms.BooleanField(required=False, label="All my projects (also ones I join later)")
    projects = forms.ModelMultipleChoiceField(queryset=Project.objects.none(), required=False,
                                              widget=forms.CheckboxSelectMultiple)
    can_write = forms.BooleanField(required=False, label="Read and write (off: read only)")
    days_valid = forms.IntegerField(min_value=0, max_value=3650, initial=90, help_text="0 = never expires.")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["projects"].queryset = projects_for(user=user).order_by("name")


@login_required
def account_tokens(request):
    form = TokenForm(request.POST or None, user=request.user)
    created = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            token, created = tokens.token_create(user=request.user, name=data["name"], projects=data["projects"],
                                                 all_projects=data["all_projects"], can_write=data["can_write"],
                                                 days_valid=data["days_valid"] or None)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            form = TokenForm(user=request.user)
            messages.success(request, f"Token “{token.name}” created. Copy it now: it is not shown again.")
    return render(request, "api/tokens.html", {"form": form, "created": created,
                                               "tokens": tokens.tokens_for(user=request.user)},
                  status=400 if form.errors else 200)


@require_POST
@login_required
def account_token_revoke(request, token_id):
    if tokens.token_revoke(user=request.user, token_id=token_id):
        messages.success(request, "Token revoked: it no longer works.")
    return redirect("account_tokens")
