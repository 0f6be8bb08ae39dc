// LumiX maps viewer: on the LumiX nodes that output maps, after a run, the five maps of a
// scene side by side or two with an A/B wipe, and a hover readout of the values under the
// cursor (see viewer/readout.js for the units). The node's UI output `lumix_maps` names one
// raw float32 file per scene in ComfyUI's temp folder (nodes/viewer_maps.py); the entries are
// kept in the node's properties, so a reloaded or reopened workflow shows them again while the
// server still has the files. The widget is never serialized: widgets_values and the API
// prompt are unchanged.

import {app} from "../../../scripts/app.js";
import {api} from "../../../scripts/api.js";
import {MapsView} from "./viewer/maps_view.js";

const NODES = new Set(["SplitIntrinsics", "LumiXDecomposePhoto"]);
const UI_KEY = "lumix_maps";             // nodes/viewer_maps.py UI_KEY
const PROPERTY = "lumix_maps";           // where the last run's entries are kept
const MIN_HEIGHT = 300;

const viewUrl = (params) => api.apiURL(`/view?${params}`);

function attach(node) {
  const view = new MapsView(viewUrl);
  const widget = node.addDOMWidget("lumix_maps_viewer", "lumix_maps_viewer", view.root, {
    serialize: false, hideOnZoom: false, getMinHeight: () => MIN_HEIGHT,
  });
  widget.serialize = false;
  node.lumixMapsViewer = view;
  const [width, height] = node.size;
  node.setSize([Math.max(width, 640), Math.max(height, node.computeSize()[1])]);
  return view;
}

app.registerExtension({
  name: "LumiX.MapsViewer",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!NODES.has(nodeData.name)) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = created?.apply(this, arguments);
      attach(this);
      return result;
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      executed?.apply(this, arguments);
      const entries = output?.[UI_KEY];
      if (!entries) return;
      this.properties = this.properties ?? {};
      this.properties[PROPERTY] = entries;
      this.lumixMapsViewer?.setEntries(entries);
    };
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = configured?.apply(this, arguments);
      const entries = this.properties?.[PROPERTY];
      if (entries) this.lumixMapsViewer?.setEntries(entries);
      return result;
    };
  },
});
