"""The ``${{ }}`` template language: compiled at load time, rendered per item at run time."""

from yaml_loader.templates.compiler import CompiledTemplate as CompiledTemplate
from yaml_loader.templates.compiler import Reference as Reference
from yaml_loader.templates.compiler import compile_template as compile_template
from yaml_loader.templates.compiler import compile_value as compile_value
from yaml_loader.templates.compiler import has_template as has_template
from yaml_loader.templates.compiler import iter_templates as iter_templates
from yaml_loader.templates.compiler import render as render
from yaml_loader.templates.compiler import render_value as render_value
from yaml_loader.templates.compiler import renders_to_itself as renders_to_itself
from yaml_loader.templates.errors import TemplateEvaluationError as TemplateEvaluationError
from yaml_loader.templates.errors import TemplateSyntaxError as TemplateSyntaxError
from yaml_loader.templates.parser import ALLOWED_ROOTS as ALLOWED_ROOTS
