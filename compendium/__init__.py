"""The book's machinery: profiles, results and claims, the book build, the report, the browser check,
and the chapter studies (model zoo, comparison tables, justification study).

It imports :mod:`ualib`; :mod:`ualib` never imports it. A researcher who uses ``ualib`` on their own
model needs none of this package (nor its extra dependencies: Jupyter Book, papermill, Playwright).
"""
