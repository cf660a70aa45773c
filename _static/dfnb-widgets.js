// Point require.js at the vendored widget manager (_static/vendor/), so that the fonts and modules it
// loads by relative URL come from this book and never from a CDN. Loaded after require.js, before embed-amd.js.
(function () {
  var src = document.currentScript.src;
  var vendor = src.slice(0, src.lastIndexOf("/") + 1) + "vendor";
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": vendor } });
})();
