"""Forms for project creation, member management and invite sign-up."""
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.validators import UnicodeUsernameValidator

from webapp.projects.models import Role


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    guidelines = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), required=False, help_text="Markdown, shown to annotators.")


class AddMemberForm(forms.Form):
    # The same rule as sign-up (letters, digits and @.+-_), so no name is made here that could not sign in.
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()],
                               help_text="Letters, digits and @ . + - _ only.")
    password = forms.CharField(widget=forms.PasswordInput, required=False, help_text="Only for a new user.")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)  # the least rights unless chosen


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)
    days_valid = forms.IntegerField(min_value=1, max_value=90, initial=7)


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username",)
