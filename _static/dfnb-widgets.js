// Point require.js at the vendored widget manager (_static/vendor/), so that the fonts and modules it
// loads by relative URL come from this book and never from a CDN. Loaded after require.js, before embed-amd.js,
// and only on pages whose notebook holds widget state (myst-nb's nb_ipywidgets_js, see _config.yml).
(function () {
  var src = document.currentScript.src;
  var vendor = src.slice(0, src.lastIndexOf("/") + 1) + "vendor";
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": vendor } });

  // The widget manager (html-manager 1.0) typesets labels with MathJax 2's MathJax.Hub.Queue; the book
  // loads MathJax 3 ("Cannot read properties of undefined (reading 'Queue')"). MathJax 3 replaces
  // window.MathJax when it loads (deferred, before DOMContentLoaded), so the bridge is added then.
  function bridge() {
    var mj = window.MathJax;
    if (!mj || mj.Hub) return;
    mj.Hub = {
      Queue: function (job) {
        var el = job && job[2];
        if (el && window.MathJax.typesetPromise) window.MathJax.typesetPromise([el]).catch(function () {});
      }
    };
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", bridge);
  else bridge();
})();
